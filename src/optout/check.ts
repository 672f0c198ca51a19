/** `optout check`: is a URL (or image) opted out, and which samples hold it. The URL is normalised and hashed once. */
import type { SampleRef } from '../index-db/db.ts';
import { withSampleIndex, type SampleIndex } from '../dataset/sample-index.ts';
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

/** `samples`: the sample index to look in (one is opened for this check when absent). */
async function lookIn<T>(
  store: OptoutStore,
  samples: SampleIndex | undefined,
  fn: (s: SampleIndex) => Promise<T>,
): Promise<T> {
  return samples ? fn(samples) : withSampleIndex(store.index, fn);
}

/** Throws UrlError on an invalid URL. */
export async function checkUrl(store: OptoutStore, url: string, sampleIndex?: SampleIndex): Promise<UrlCheck> {
  const hash = urlHash(url);
  const storedAs = store.storedUrlByHash(hash);
  const samples = await lookIn(store, sampleIndex, (s) => s.samplesByUrlHash(hash));
  const byImage = samples.some((s) => s.sha256 !== null && store.hasImage(s.sha256));
  return { url, optedOut: storedAs !== undefined || byImage, storedAs, byImage, samples };
}

/** Throws on a malformed sha256. */
export async function checkImage(store: OptoutStore, sha256: string, sampleIndex?: SampleIndex): Promise<ImageCheck> {
  const optedOut = store.hasImage(sha256);
  return {
    sha256: sha256.trim().toLowerCase(),
    optedOut,
    samples: await lookIn(store, sampleIndex, (s) => s.samplesBySha256(sha256)),
  };
}
