/**
 * The HTTP download stage: one shared undici Agent per process (keep-alive, TLS session reuse), manual
 * redirects, a total per-attempt timeout, a body size cap, opt-out headers checked before the body is
 * read, an SSRF guard at connection time, and bounded retries for transient failures only.
 */
import { STATUS_CODES } from 'node:http';
import pLimit from 'p-limit';
import type { Dispatcher } from 'undici';
import type { DownloadConfig } from '../pipeline/config-types.ts';
import { backoffDelay, parseRetryAfter, sleep } from './backoff.ts';
import { classifyError } from './errors.ts';
import { withConnectTimeout } from './connect-timeout.ts';
import { createGuardedConnector } from './guard.ts';
import { tdmReserved, xRobotsTagBlock } from './opt-out-headers.ts';
import { OriginPools } from './origin-pools.ts';
import { abandon, discard, readCapped } from './read-body.ts';
import { caList } from './trust.ts';
import { buildUserAgent } from './user-agent.ts';

export type DownloadFailure = {
  ok: false;
  /** short machine-readable reason, e.g. 'http_404', 'timeout', 'private_address', 'x_robots_tag' */
  reason: string;
  /** human message, e.g. 'HTTP 404 Not Found', 'X-Robots-Tag: noai' */
  error: string;
  /** true when the response itself forbids use (X-Robots-Tag / tdm-reservation): recorded as `opted_out` */
  optedOut: boolean;
  /** requests attempted (0 when the URL was refused before any request) */
  attempts: number;
};
export type DownloadSuccess = {
  ok: true;
  bytes: Buffer;
  status: number;
  /** the URL after redirects; the caller's URL unchanged (not rewritten) when there was no redirect */
  finalUrl: string;
  contentType: string | null;
  attempts: number;
};
export type DownloadResult = DownloadSuccess | DownloadFailure;

export interface Downloader {
  /** Never throws for network or HTTP problems: those come back as a DownloadFailure. */
  get(url: string): Promise<DownloadResult>;
  close(): Promise<void>;
}

export interface DownloaderOptions {
  /**
   * Maps a URL to the one actually requested (bundled sample: `http://sample.invalid/...` -> a local
   * server). Applied to every hop; reported URLs stay un-rewritten. Origins it maps to are trusted:
   * the private-network guard does not apply to them, since the operator chose them.
   */
  rewriteUrl?: (url: string) => string;
  /** Extra trusted CA certificate (PEM), in addition to node's roots and NODE_EXTRA_CA_CERTS. */
  ca?: string | Buffer;
  /** First retry delay before jitter; doubles per retry. Default 200 ms. */
  retryBaseMs?: number;
  /** A 429/503 asking to wait longer than this is not retried. Default 5000 ms. */
  maxRetryAfterMs?: number;
}

/** One attempt's failure, before it is known whether it will be retried. */
type AttemptFailure = Omit<DownloadFailure, 'attempts'> & { transient: boolean; retryAfterMs?: number };
type AttemptResult = Omit<DownloadSuccess, 'attempts'> | AttemptFailure;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const ACCEPT = 'image/avif,image/webp,image/apng,image/*,*/*;q=0.8';

function failure(reason: string, error: string, extra: Partial<AttemptFailure> = {}): AttemptFailure {
  return { ok: false, reason, error, optedOut: false, transient: false, ...extra };
}

/** Parses an http(s) URL, or explains why it cannot be requested. */
function parseHttpUrl(text: string, base?: URL): URL | AttemptFailure {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    return failure('bad_url', `invalid URL: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return failure('unsupported_scheme', `unsupported scheme ${url.protocol}`);
  }
  return url;
}

export function createDownloader(cfg: DownloadConfig, opts: DownloaderOptions = {}): Downloader {
  const timeoutMs = cfg.timeout_s * 1000;
  const retryBaseMs = opts.retryBaseMs ?? 200;
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? 5000;
  const concurrency = Math.max(1, cfg.concurrency);
  const trustedOrigins = new Set<string>();
  const ca = caList(opts.ca);

  // One connector for all pools: one TLS session cache, so new connections resume sessions.
  const pools = new OriginPools({
    connect: withConnectTimeout(
      createGuardedConnector({
        connect: { timeout: 0, maxCachedSessions: 1024, ...(ca ? { ca } : {}) },
        enabled: !cfg.allow_private_network,
        trustedOrigins,
      }),
      cfg.connect_timeout_s * 1000,
    ),
    pipelining: 1, // keep-alive, one request at a time per connection
    connections: concurrency,
    keepAliveTimeout: 10_000,
    // Backstops only: the per-attempt AbortController below is what enforces timeout_s.
    headersTimeout: timeoutMs + 1000,
    bodyTimeout: timeoutMs + 1000,
  });
  const limit = pLimit(concurrency);
  const headers = { 'user-agent': buildUserAgent(cfg.user_agent_token), accept: ACCEPT };

  /** The URL to put on the wire for `logical`, trusting the rewrite target's origin. */
  function wireUrl(logical: URL): URL | AttemptFailure {
    if (!opts.rewriteUrl) return logical;
    const rewritten = parseHttpUrl(opts.rewriteUrl(logical.href));
    if (rewritten instanceof URL && rewritten.href !== logical.href) trustedOrigins.add(rewritten.origin);
    return rewritten;
  }

  /** Checks a final (non-redirect) response and reads its body. */
  async function finish(res: Dispatcher.ResponseData, finalUrl: string): Promise<AttemptResult> {
    const status = res.statusCode;
    if (status < 200 || status > 299) {
      await discard(res.body);
      const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(res.headers['retry-after']) : null;
      const transient = (status >= 500 || status === 429) && (retryAfterMs === null || retryAfterMs <= maxRetryAfterMs);
      return failure(`http_${status}`, `HTTP ${status} ${STATUS_CODES[status] ?? ''}`.trim(), {
        transient,
        ...(retryAfterMs !== null ? { retryAfterMs } : {}),
      });
    }
    // Opt-out and size checks come before any body byte is read; refusing destroys the connection.
    const robots = xRobotsTagBlock(res.headers['x-robots-tag'], cfg.user_agent_token, cfg.disallowed_header_directives);
    if (robots !== null) {
      abandon(res.body);
      return failure('x_robots_tag', `X-Robots-Tag: ${robots}`, { optedOut: true });
    }
    if (cfg.respect_tdm_reservation && tdmReserved(res.headers['tdm-reservation'])) {
      abandon(res.body);
      return failure('tdm_reservation', 'tdm-reservation: 1', { optedOut: true });
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > cfg.max_bytes) {
      abandon(res.body);
      return failure('body_too_large', `Content-Length ${declared} exceeds max_bytes ${cfg.max_bytes}`);
    }
    const body = await readCapped(res.body, cfg.max_bytes);
    if (!body.ok) return failure('body_too_large', `body exceeds max_bytes ${cfg.max_bytes}`);
    const type = res.headers['content-type'];
    return {
      ok: true,
      bytes: body.bytes,
      status,
      finalUrl,
      contentType: (Array.isArray(type) ? type[0] : type) ?? null,
    };
  }

  /** One attempt: the request and its redirect hops, all within one timeout_s. */
  async function attempt(originalText: string, original: URL): Promise<AttemptResult> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    try {
      let logical = original;
      for (let redirects = 0; ; redirects++) {
        const wire = wireUrl(logical);
        if (!(wire instanceof URL)) return wire;
        const res = await pools.get(wire.origin).request({
          path: `${wire.pathname}${wire.search}`,
          method: 'GET',
          headers,
          signal: controller.signal,
        });
        const location = res.headers.location;
        if (!REDIRECT_STATUSES.has(res.statusCode) || location === undefined) {
          return await finish(res, redirects === 0 ? originalText : logical.href);
        }
        await discard(res.body);
        if (redirects >= cfg.max_redirects) {
          return failure('too_many_redirects', `more than ${cfg.max_redirects} redirects (last to ${String(location)})`);
        }
        const next = parseHttpUrl(Array.isArray(location) ? location[0] : location, logical);
        if (!(next instanceof URL)) return next;
        logical = next;
      }
    } catch (err) {
      if (timedOut) return failure('timeout', `no complete response within ${cfg.timeout_s} s`, { transient: true });
      const { reason, error, transient } = classifyError(err);
      return failure(reason, error, { transient });
    } finally {
      clearTimeout(timer);
    }
  }

  async function get(url: string): Promise<DownloadResult> {
    const parsed = parseHttpUrl(url);
    if (!(parsed instanceof URL)) return { ok: false, reason: parsed.reason, error: parsed.error, optedOut: false, attempts: 0 };
    for (let attempts = 1; ; attempts++) {
      // The concurrency slot is held per attempt, not while sleeping between attempts.
      const result = await limit(() => attempt(url, parsed));
      if (result.ok) return { ...result, attempts };
      if (!result.transient || attempts > cfg.retries) {
        return { ok: false, reason: result.reason, error: result.error, optedOut: result.optedOut, attempts };
      }
      await sleep(Math.max(backoffDelay(attempts, retryBaseMs), result.retryAfterMs ?? 0));
    }
  }

  return { get, close: () => pools.close() };
}
