/**
 * URL normalisation for the opt-out and dedup index. Two spellings of the same image URL must hash alike, and
 * nothing that could name a different resource may be changed:
 * - parsed as fetch parses it (WHATWG URL, what the downloader requests): scheme and host lower-cased, IDN host to
 *   punycode, default port dropped, dot segments resolved, characters that must be escaped percent-encoded (UTF-8);
 * - the fragment is dropped (never sent to the server);
 * - percent-encoding normalised (RFC 3986 §6.2.2.2): `%XX` of an unreserved character (A-Z a-z 0-9 - . _ ~) is
 *   decoded, every other `%xx` gets upper-case hex;
 * - nothing else: path case, query order, empty query `?` and trailing slash are kept.
 */
import { hash } from 'node:crypto';

export class UrlError extends Error {}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function normalizePercent(m: string, hex: string): string {
  const ch = String.fromCharCode(parseInt(hex, 16));
  return UNRESERVED.test(ch) ? ch : '%' + hex.toUpperCase();
}

/** The normalised form of an http(s) URL; throws UrlError naming the input when it is not one. */
export function normalizeUrl(input: string): string {
  let u: URL;
  try {
    u = new URL(input);
  } catch {
    throw new UrlError(`not a valid URL: ${JSON.stringify(input)}`);
  }
  let href = u.href;
  if (!href.startsWith('https://') && !href.startsWith('http://'))
    throw new UrlError(`not an http(s) URL: ${JSON.stringify(input)}`);
  // The first '#' of a serialised URL starts the fragment (slicing is cheaper than the `hash` setter).
  const frag = href.indexOf('#');
  if (frag >= 0) href = href.slice(0, frag);
  return href.includes('%') ? href.replace(/%([0-9A-Fa-f]{2})/g, normalizePercent) : href;
}

/** First 8 bytes of sha256 of the normalised URL: the key of the index's URL columns. */
export function urlHash(input: string): Buffer {
  return hashNormalized(normalizeUrl(input));
}

export function hashNormalized(normalized: string): Buffer {
  return hash('sha256', normalized, 'buffer').subarray(0, 8);
}

/** `urlHash`, or null when the input is not a valid http(s) URL (which is never opted out). */
export function urlHashOrNull(input: string): Buffer | null {
  try {
    return urlHash(input);
  } catch {
    return null;
  }
}

/**
 * For recording what fetch saw: the hash of the normalised URL, or of the trimmed string itself when it is not
 * a valid http(s) URL (such a row still gets an index entry; it never matches an opt-out, which must be valid).
 */
export function urlHashLoose(input: string): Buffer {
  try {
    return urlHash(input);
  } catch {
    return hashNormalized(input.trim());
  }
}
