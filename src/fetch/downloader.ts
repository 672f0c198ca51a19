/**
 * The HTTP download stage: one undici pool per origin (keep-alive, TLS session reuse), manual redirects, three
 * deadlines per attempt (connect, first byte, whole response), a body size cap, opt-out headers checked before
 * the body is read, an SSRF guard at connection time, per-origin health (src/fetch/origin-health.ts), and
 * retries chosen by failure kind (see `retryDecision`). A request only waiting on the network holds no slot:
 * the caller's lease (src/fetch/slots.ts) is lent out while it sleeps, queues for its origin or is parked.
 */
import { STATUS_CODES } from 'node:http';
import type { Dispatcher } from 'undici';
import type { DownloadConfig } from '../pipeline/config-types.ts';
import { backoffDelay, parseRetryAfter, sleep } from './backoff.ts';
import { classifyError } from './errors.ts';
import { withConnectTimeout } from './connect-timeout.ts';
import { createGuardedConnector } from './guard.ts';
import { tdmReserved, xRobotsTagBlock } from './opt-out-headers.ts';
import { OriginPools } from './origin-pools.ts';
import { OriginHealth, type CutOff, type Outcome } from './origin-health.ts';
import { Slots, type Lease } from './slots.ts';
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

export interface DownloaderStatus {
  /** slots in use (requests and the work of rows holding a lease) */
  active: number;
  /** requests parked on a slow server, plus those waiting for their origin's turn (cap or 429 pause) */
  waitingOnSlowOrigins: number;
  /** origins cut off so far */
  cutOffs: CutOff[];
}

export interface Downloader {
  /**
   * Never throws for network or HTTP problems: those come back as a DownloadFailure. With `lease` (from
   * `lease()`, held), the request uses that slot and lends it out while it only waits; it is held again when
   * `get` returns. Without, `get` takes a slot of its own.
   */
  get(url: string, lease?: Lease): Promise<DownloadResult>;
  /** One of the downloader's `concurrency` slots, to hold across a download and what follows it. */
  lease(): Promise<Lease>;
  status(): DownloaderStatus;
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
  /** A request with no response after this long lends its slot out (parked). Default 1000 ms. */
  parkAfterMs?: number;
}

/** Reasons that count toward an origin's cut-off: it did not answer. */
const NO_ANSWER: Record<string, Outcome> = {
  connect_timeout: 'timeout',
  first_byte_timeout: 'timeout',
  timeout: 'timeout',
  connection_refused: 'refused',
  unreachable: 'refused',
};
const TIMEOUTS = new Set(['connect_timeout', 'first_byte_timeout', 'timeout']);

/**
 * The retry policy, by failure kind. Retried (up to `retries` times, after exponential back-off with jitter):
 * resets, truncated bodies, temporary DNS failures, 5xx, and 429 / 503 after their Retry-After (when it is at
 * most maxRetryAfterMs). A timeout is retried only when its origin has had no other timeout within the
 * cool-down: a second wait on an origin that is already timing out would mostly wait again.
 * Never retried: refusals, 4xx, TLS and address errors, opt-outs, oversize bodies.
 */
export function retryDecision(
  f: { reason: string; transient: boolean },
  attempts: number,
  retries: number,
  originTimingOut: boolean,
): 'retry' | 'final' | 'final_timing_out' {
  if (!f.transient || attempts > retries) return 'final';
  if (TIMEOUTS.has(f.reason) && originTimingOut) return 'final_timing_out';
  return 'retry';
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
  // a first-byte deadline at or past the total one is the total one
  const firstByteMs = cfg.first_byte_timeout_s * 1000 < timeoutMs ? cfg.first_byte_timeout_s * 1000 : Infinity;
  const parkAfterMs = opts.parkAfterMs ?? 1000;
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
    // Backstops only: the per-attempt AbortController below is what enforces the deadlines.
    headersTimeout: timeoutMs + 1000,
    bodyTimeout: timeoutMs + 1000,
  });
  // Parked requests hold a socket but no slot; at most 3× the slots of them, so sockets stay bounded.
  const slots = new Slots(concurrency, 3 * concurrency);
  const health = new OriginHealth({
    cutoffAfter: cfg.origin_cutoff_after,
    cooldownMs: cfg.origin_cooldown_s * 1000,
    perOrigin: Math.max(1, cfg.per_origin_concurrency),
  });
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

  /**
   * One attempt: the request and its redirect hops. Deadlines from its start: the first response's headers within
   * first_byte_timeout_s, everything within timeout_s (the connect deadline is the connector's). With no response
   * after parkAfterMs the lease is parked (slot lent out) until the headers come.
   */
  async function attempt(originalText: string, original: URL, lease: Lease): Promise<AttemptResult> {
    const controller = new AbortController();
    let expired: 'first_byte' | 'total' | null = null;
    const expire = (why: 'first_byte' | 'total') => () => {
      expired ??= why;
      controller.abort();
    };
    const total = setTimeout(expire('total'), timeoutMs);
    const firstByte = firstByteMs < Infinity ? setTimeout(expire('first_byte'), firstByteMs) : undefined;
    const park = setTimeout(() => lease.park(), parkAfterMs);
    const answered = async () => {
      clearTimeout(firstByte);
      clearTimeout(park);
      await lease.take(); // back from parking (no-op when never parked) before reading a body
    };
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
        await answered();
        const location = res.headers.location;
        if (!REDIRECT_STATUSES.has(res.statusCode) || location === undefined) {
          return await finish(res, redirects === 0 ? originalText : logical.href);
        }
        await discard(res.body);
        if (redirects >= cfg.max_redirects) {
          return failure(
            'too_many_redirects',
            `more than ${cfg.max_redirects} redirects (last to ${String(location)})`,
          );
        }
        const next = parseHttpUrl(Array.isArray(location) ? location[0] : location, logical);
        if (!(next instanceof URL)) return next;
        logical = next;
      }
    } catch (err) {
      if (expired === 'first_byte')
        return failure('first_byte_timeout', `no response within ${firstByteMs / 1000} s`, { transient: true });
      if (expired === 'total')
        return failure('timeout', `no complete response within ${cfg.timeout_s} s`, { transient: true });
      const { reason, error, transient } = classifyError(err);
      return failure(reason, error, { transient });
    } finally {
      clearTimeout(total);
      clearTimeout(firstByte);
      clearTimeout(park);
      await lease.take();
    }
  }

  async function getWith(url: string, lease: Lease): Promise<DownloadResult> {
    const parsed = parseHttpUrl(url);
    if (!(parsed instanceof URL))
      return { ok: false, reason: parsed.reason, error: parsed.error, optedOut: false, attempts: 0 };
    const wire = wireUrl(parsed);
    if (!(wire instanceof URL))
      return { ok: false, reason: wire.reason, error: wire.error, optedOut: false, attempts: 0 };
    const origin = wire.origin;
    let previous: DownloadFailure | undefined;
    for (let attempts = 1; ; attempts++) {
      // Queueing for the origin's turn (cap, 429 pause) holds no slot.
      let ticket = health.tryEnter(origin, attempts > 1);
      if (!ticket) {
        lease.lend();
        ticket = await health.enter(origin, attempts > 1);
        await lease.take();
      }
      if (!ticket.ok) {
        // host_unresponsive means never requested; a row cut off between attempts keeps its last failure
        if (previous) return { ...previous, error: `${previous.error}; not retried: ${origin} was cut off` };
        return { ok: false, reason: 'host_unresponsive', error: ticket.error, optedOut: false, attempts: 0 };
      }
      const result = await attempt(url, parsed, lease);
      const { alreadyTimingOut } = ticket.leave(result.ok ? 'answered' : (NO_ANSWER[result.reason] ?? 'answered'));
      if (result.ok) return { ...result, attempts };
      const decision = retryDecision(result, attempts, cfg.retries, alreadyTimingOut);
      if (decision !== 'retry') {
        const error =
          decision === 'final_timing_out' ? `${result.error}; not retried: ${origin} is timing out` : result.error;
        return { ok: false, reason: result.reason, error, optedOut: result.optedOut, attempts };
      }
      previous = { ok: false, reason: result.reason, error: result.error, optedOut: result.optedOut, attempts };
      const delay = Math.max(backoffDelay(attempts, retryBaseMs), result.retryAfterMs ?? 0);
      // A 429 / 503 holds the whole origin back, not just this row.
      if (result.retryAfterMs !== undefined || result.reason === 'http_429') health.pause(origin, delay);
      lease.lend();
      await sleep(delay);
      await lease.take();
    }
  }

  async function get(url: string, lease?: Lease): Promise<DownloadResult> {
    const own = lease ?? (await slots.lease());
    try {
      return await getWith(url, own);
    } finally {
      if (!lease) own.end();
    }
  }

  return {
    get,
    lease: () => slots.lease(),
    status: () => ({
      active: slots.inUse,
      waitingOnSlowOrigins: slots.parked + health.waiting,
      cutOffs: health.cutOffs(),
    }),
    close: () => pools.close(),
  };
}
