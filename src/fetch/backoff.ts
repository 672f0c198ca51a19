/** Retry timing: exponential backoff with jitter, and Retry-After parsing. */

/**
 * Delay before retry number `retry` (1 = first retry): base * 2^(retry-1), capped, then "equal jitter"
 * (a random value in [d/2, d]) so that many workers hitting the same failing host do not retry in step.
 */
export function backoffDelay(retry: number, baseMs: number, capMs = 10_000, random = Math.random): number {
  const d = Math.min(capMs, baseMs * 2 ** Math.max(0, retry - 1));
  return d / 2 + random() * (d / 2);
}

/** Retry-After as milliseconds from now (delta-seconds or HTTP-date), or null when absent/unparsable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return null;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
