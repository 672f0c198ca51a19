/** Reading a response body under a byte cap, and throwing away bodies we do not want. */
import type { Readable } from 'node:stream';

export type CappedBody = { ok: true; bytes: Buffer } | { ok: false; received: number };

/**
 * Collects the body, or stops as soon as more than `maxBytes` arrived (servers may omit or lie about
 * Content-Length). Stopping destroys the stream, which makes undici abort the connection.
 */
export async function readCapped(body: Readable, maxBytes: number): Promise<CappedBody> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    received += buf.length;
    if (received > maxBytes) {
      abandon(body);
      return { ok: false, received };
    }
    chunks.push(buf);
  }
  return { ok: true, bytes: Buffer.concat(chunks, received) };
}

/** Small bodies (error pages, redirects) are drained so the connection can be reused; big ones cut it. */
export async function discard(body: Readable & { dump(opts?: { limit: number }): Promise<void> }): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    // the response is already decided; a failing drain only costs the connection
  }
}

/**
 * Refuses a body without reading it (opt-out headers, declared oversize). undici turns a destroy before the end
 * into an 'error' event (RequestAbortedError), which would crash the process without a listener.
 */
export function abandon(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}
