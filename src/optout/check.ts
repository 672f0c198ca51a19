/** `optout check`: is a URL (or image) opted out, and which samples hold it. The URL is normalised and hashed once. */
import type { SampleRef } from '../index-db/db.ts';
import { urlHash } from './normalize-url.ts';
import type { OptoutStore } from './store.ts';

export interface UrlCheck {
  url: string;
  /** Opted out by URL, or because the image fetched from it is opted out by sha256. */
  optedOut: boolean;
  /** The spelling the opt-out was recorded with, when opted out by URL. */
  storedAs?: string;
  byImage: boolean;
  /** Samples fetched from this URL, in any dataset of the index. */
  samples: SampleRef[];
}

export interface ImageCheck {
  sha256: string;
  optedOut: boolean;
  samples: SampleRef[];
}

/** Throws UrlError on an invalid URL. */
export function checkUrl(store: OptoutStore, url: string): UrlCheck {
  const hash = urlHash(url);
  const storedAs = store.storedUrlByHash(hash);
  const samples = store.index.samplesByUrlHash(hash);
  const byImage = samples.some((s) => s.sha256 !== null && store.hasImage(s.sha256));
  return { url, optedOut: storedAs !== undefined || byImage, storedAs, byImage, samples };
}

/** Throws on a malformed sha256. */
export function checkImage(store: OptoutStore, sha256: string): ImageCheck {
  return { sha256: sha256.trim().toLowerCase(), optedOut: store.hasImage(sha256), samples: store.index.samplesBySha256(sha256.trim()) };
}
