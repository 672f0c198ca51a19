// The downloader against loopback servers (127.0.0.1, port 0). No internet.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { DownloadConfig } from '../../src/pipeline/config-types.ts';
import { createDownloader, type DownloaderOptions, type DownloadResult } from '../../src/fetch/downloader.ts';

const TOKEN = 'musebot';
const BASE: DownloadConfig = {
  concurrency: 8,
  connect_timeout_s: 0.5,
  first_byte_timeout_s: 5,
  timeout_s: 0.8,
  retries: 2,
  origin_cutoff_after: 5,
  origin_cooldown_s: 60,
  per_origin_concurrency: 32,
  max_redirects: 5,
  max_bytes: 1 << 20,
  user_agent_token: TOKEN,
  disallowed_header_directives: ['noai', 'noimageai', 'noindex', 'noimageindex'],
  respect_tdm_reservation: true,
  allow_private_network: true,
};
const IMAGE = randomBytes(5000);

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A loopback server that counts hits per path and TCP connections. */
async function startServer(routes: Record<string, Handler>, server: http.Server = http.createServer()) {
  const hits = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  let connections = 0;
  server.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(p, (hits.get(p) ?? 0) + 1);
    const handler = routes[p];
    if (handler) handler(req, res);
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const scheme = server instanceof https.Server ? 'https' : 'http';
  return {
    port,
    url: (p: string) => `${scheme}://127.0.0.1:${port}${p}`,
    hits: (p: string) => hits.get(p) ?? 0,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const sendImage: Handler = (_req, res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(IMAGE);
/** Sends headers only and holds the body back, so a client that reads the body would hang. */
const headersOnly =
  (headers: Record<string, string | string[]>): Handler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(IMAGE.length), ...headers });
    res.flushHeaders();
  };
/** Fails `n` times with `status`, then serves the image. */
function failThenServe(n: number, status: number, headers: Record<string, string> = {}): Handler {
  let left = n;
  return (req, res) => (left-- > 0 ? res.writeHead(status, headers).end('busy') : sendImage(req, res));
}
const redirect =
  (location: string): Handler =>
  (_req, res) =>
    res.writeHead(302, { location }).end();

/** Tracks whether responses were cut off by the client before they were fully written. */
const aborted = new Set<string>();
const dripForever: Handler = (req, res) => {
  res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': '100000' });
  const timer = setInterval(() => res.write(Buffer.alloc(1)), 30);
  res.on('close', () => {
    clearInterval(timer);
    if (!res.writableFinished) aborted.add(req.url ?? '');
  });
};
function bigBody(withLength: boolean): Handler {
  return (req, res) => {
    res.writeHead(200, { 'content-type': 'image/jpeg', ...(withLength ? { 'content-length': '200000' } : {}) });
    let sent = 0;
    const timer = setInterval(() => {
      if (sent >= 200_000) return void (clearInterval(timer), res.end());
      res.write(Buffer.alloc(10_000));
      sent += 10_000;
    }, 5);
    res.on('close', () => {
      clearInterval(timer);
      if (!res.writableFinished) aborted.add(req.url ?? '');
    });
  };
}

const routes: Record<string, Handler> = {
  '/img': sendImage,
  '/ua': (req, res) => res.writeHead(200).end(req.headers['user-agent']),
  '/500': (_req, res) => res.writeHead(500).end('boom'),
  '/503-twice': failThenServe(2, 503),
  '/429-short': failThenServe(1, 429, { 'retry-after': '0' }),
  '/429-long': failThenServe(1, 429, { 'retry-after': '3600' }),
  '/reset': (req) => req.socket.destroy(),
  '/hang': () => {},
  '/drip': dripForever,
  '/r3': redirect('r2'),
  '/r2': (req, res) => redirect(`http://${req.headers.host}/r1`)(req, res),
  '/r1': redirect('/img'),
  '/loop': redirect('/loop'),
  '/to-ftp': redirect('ftp://example.com/x.jpg'),
  '/big-cl': bigBody(true),
  '/big-chunked': bigBody(false),
  '/robots-noai': headersOnly({ 'x-robots-tag': 'noai' }),
  '/robots-other': (_req, res) => res.writeHead(200, { 'x-robots-tag': 'otherbot: noai' }).end(IMAGE),
  '/robots-ours': headersOnly({ 'x-robots-tag': `${TOKEN}: noimageai` }),
  '/robots-multi': headersOnly({ 'x-robots-tag': ['otherbot: noai', 'noindex, nofollow'] }),
  '/tdm-1': headersOnly({ 'tdm-reservation': '1' }),
  '/tdm-0': (_req, res) => res.writeHead(200, { 'tdm-reservation': '0' }).end(IMAGE),
};
const server = await startServer(routes);
after(() => server.close());

/** Runs `fn` with a fresh downloader and closes it afterwards. */
async function withDownloader<T>(
  cfg: Partial<DownloadConfig>,
  fn: (get: (url: string) => Promise<DownloadResult>) => Promise<T>,
  opts: DownloaderOptions = {},
): Promise<T> {
  const d = createDownloader({ ...BASE, ...cfg }, { retryBaseMs: 5, ...opts });
  try {
    return await fn((u) => d.get(u));
  } finally {
    await d.close();
  }
}
const get = (url: string, cfg: Partial<DownloadConfig> = {}, opts: DownloaderOptions = {}) =>
  withDownloader(cfg, (g) => g(url), opts);

function assertFailure(r: DownloadResult, reason: string, attempts: number) {
  assert.equal(r.ok, false, `expected failure ${reason}`);
  if (r.ok) return;
  assert.deepEqual({ reason: r.reason, attempts: r.attempts }, { reason, attempts }, r.error);
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
}

test('200: returns the image bytes, content type, and the img2dataset-style User-Agent', async () => {
  const r = await get(server.url('/img'));
  assert.ok(r.ok);
  assert.deepEqual(r.bytes, IMAGE);
  assert.equal(r.status, 200);
  assert.equal(r.contentType, 'image/jpeg');
  assert.equal(r.finalUrl, server.url('/img'));
  assert.equal(r.attempts, 1);
  const ua = await get(server.url('/ua'));
  assert.ok(ua.ok);
  assert.match(
    ua.bytes.toString(),
    /^Mozilla\/5\.0 .*Firefox\/72\.0 \(compatible; musebot; \+https:\/\/github\.com\/muse\)$/,
  );
});

test('404 is not retried', async () => {
  const r = await get(server.url('/missing'));
  assertFailure(r, 'http_404', 1);
  assert.equal(!r.ok && r.error, 'HTTP 404 Not Found');
  assert.equal(!r.ok && r.optedOut, false);
  assert.equal(server.hits('/missing'), 1);
});

test('500 is retried `retries` times', async () => {
  assertFailure(await get(server.url('/500'), { retries: 2 }), 'http_500', 3);
  assert.equal(server.hits('/500'), 3);
});

test('503 twice then 200 succeeds on the third attempt', async () => {
  const r = await get(server.url('/503-twice'), { retries: 2 });
  assert.ok(r.ok);
  assert.equal(r.attempts, 3);
  assert.deepEqual(r.bytes, IMAGE);
});

test('429 honours a short Retry-After and gives up on a long one', async () => {
  const short = await get(server.url('/429-short'), { retries: 1 });
  assert.ok(short.ok);
  assert.equal(short.attempts, 2);
  assertFailure(await get(server.url('/429-long'), { retries: 3 }), 'http_429', 1);
  assert.equal(server.hits('/429-long'), 1);
});

test('connection reset is transient and retried', async () => {
  assertFailure(await get(server.url('/reset'), { retries: 1 }), 'connection_reset', 2);
  assert.equal(server.hits('/reset'), 2);
});

test('a server that never answers times out within timeout_s', async () => {
  const [r, ms] = await timed(() => get(server.url('/hang'), { timeout_s: 0.3, retries: 0 }));
  assertFailure(r, 'timeout', 1);
  assert.ok(ms >= 280, `gave up early, after ${ms} ms`); // the reason shows the total timer ended it
});

test('a slow-drip body that never finishes hits the total timeout', async () => {
  const [r, ms] = await timed(() => get(server.url('/drip'), { timeout_s: 0.3, retries: 0 }));
  assertFailure(r, 'timeout', 1);
  assert.ok(ms >= 280, `gave up early, after ${ms} ms`); // the reason shows the total timer ended it
});

test('connect timeout: a TLS server that never finishes the handshake', async () => {
  // A plain TCP listener that accepts and stays silent: the TLS handshake never completes.
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => void sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as net.AddressInfo).port;
  try {
    const [r, ms] = await timed(() =>
      get(`https://127.0.0.1:${port}/x`, { connect_timeout_s: 0.2, timeout_s: 3, retries: 0 }),
    );
    assertFailure(r, 'connect_timeout', 1);
    assert.ok(ms >= 180, `gave up early, after ${ms} ms`); // 'connect_timeout', not the 3 s total: the connect timer ended it
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test('redirects: a chain of 3 (relative and absolute) is followed; too many and loops fail', async () => {
  const r = await get(server.url('/r3'));
  assert.ok(r.ok);
  assert.deepEqual(r.bytes, IMAGE);
  assert.equal(r.finalUrl, server.url('/img'));
  assertFailure(await get(server.url('/r3'), { max_redirects: 2 }), 'too_many_redirects', 1);
  const before = server.hits('/loop');
  assertFailure(await get(server.url('/loop'), { max_redirects: 4 }), 'too_many_redirects', 1);
  assert.equal(server.hits('/loop') - before, 5, 'first request + 4 redirects, not retried');
  assertFailure(await get(server.url('/to-ftp')), 'unsupported_scheme', 1);
});

test('oversize body: refused from Content-Length and while streaming without it', async () => {
  const cfg = { max_bytes: 50_000 };
  assertFailure(await get(server.url('/big-cl'), cfg), 'body_too_large', 1);
  assertFailure(await get(server.url('/big-chunked'), cfg), 'body_too_large', 1);
  await new Promise((r) => setTimeout(r, 50)); // let the server notice the closed sockets
  assert.ok(aborted.has('/big-cl') && aborted.has('/big-chunked'), 'the client cut both responses off');
});

test('X-Robots-Tag and tdm-reservation opt out, without downloading the body', async () => {
  // The refused routes never send their body: reading it would hang until the 2 s timeout.
  const results = await withDownloader({ timeout_s: 2 }, async (g) => ({
    noai: await g(server.url('/robots-noai')),
    other: await g(server.url('/robots-other')),
    ours: await g(server.url('/robots-ours')),
    multi: await g(server.url('/robots-multi')),
    tdm1: await g(server.url('/tdm-1')),
    tdm0: await g(server.url('/tdm-0')),
  }));
  for (const [name, reason, error] of [
    ['noai', 'x_robots_tag', 'X-Robots-Tag: noai'],
    ['ours', 'x_robots_tag', `X-Robots-Tag: ${TOKEN}: noimageai`],
    ['multi', 'x_robots_tag', 'X-Robots-Tag: noindex'],
    ['tdm1', 'tdm_reservation', 'tdm-reservation: 1'],
  ] as const) {
    const r = results[name];
    assert.deepEqual(r.ok ? r : { reason: r.reason, error: r.error, optedOut: r.optedOut, attempts: r.attempts }, {
      reason,
      error,
      optedOut: true,
      attempts: 1,
    });
  }
  assert.ok(results.other.ok, 'otherbot: noai does not apply to us');
  assert.ok(results.tdm0.ok);
  const ignored = await get(server.url('/robots-other'), {
    disallowed_header_directives: [],
    user_agent_token: 'otherbot',
  });
  assert.ok(ignored.ok, 'an empty directive list disables the check');
  const tdmOff = await get(server.url('/tdm-1'), { respect_tdm_reservation: false, timeout_s: 0.3, retries: 0 });
  assert.ok(!tdmOff.ok && tdmOff.reason === 'timeout', 'with the check off the body is awaited (and never comes)');
});

test('private network guard: literal IPs and names resolving to loopback are refused before connecting', async () => {
  const guard = await startServer({ '/img': sendImage });
  try {
    const cfg = { allow_private_network: false };
    for (const url of [
      guard.url('/img'),
      `http://localhost:${guard.port}/img`,
      `http://[::ffff:127.0.0.1]:${guard.port}/img`,
      `http://2130706433:${guard.port}/img`, // 127.0.0.1 as one decimal number
    ]) {
      const r = await get(url, cfg);
      assertFailure(r, 'private_address', 1);
      assert.match(!r.ok ? r.error : '', /refused: .*private address/);
    }
    assert.equal(guard.connections(), 0, 'no TCP connection was made');
    assert.equal(guard.hits('/img'), 0);
    assert.ok((await get(guard.url('/img'))).ok, 'allowed with allow_private_network');
  } finally {
    await guard.close();
  }
});

test('private network guard: a redirect from an allowed host to a private one is refused', async () => {
  // `allowed.invalid` plays a public host: rewriteUrl sends it to server A, and rewrite targets are
  // trusted (that is how the bundled sample reaches its local server). Server B is "internal": any
  // redirect to it must be refused at connection time, whether by IP literal or by a name (DNS path).
  const internal = await startServer({ '/secret': sendImage });
  const front = await startServer({
    '/img': sendImage,
    '/rel': redirect('/img'),
    '/to-ip': redirect(internal.url('/secret')),
    '/to-name': redirect(`http://localhost:${internal.port}/secret`),
  });
  try {
    const opts: DownloaderOptions = {
      rewriteUrl: (u) => u.replace('http://allowed.invalid', `http://127.0.0.1:${front.port}`),
    };
    await withDownloader(
      { allow_private_network: false },
      async (g) => {
        const ok = await g('http://allowed.invalid/img');
        assert.ok(ok.ok);
        assert.equal(ok.finalUrl, 'http://allowed.invalid/img', 'reported URL is not rewritten');
        const rel = await g('http://allowed.invalid/rel');
        assert.ok(rel.ok);
        assert.equal(rel.finalUrl, 'http://allowed.invalid/img');
        assertFailure(await g('http://allowed.invalid/to-ip'), 'private_address', 1);
        assertFailure(await g('http://allowed.invalid/to-name'), 'private_address', 1);
      },
      opts,
    );
    assert.equal(front.hits('/to-ip') + front.hits('/to-name'), 2);
    assert.equal(internal.connections(), 0, 'the internal server saw no connection');
  } finally {
    await front.close();
    await internal.close();
  }
});

test('only http(s): other schemes and unparsable URLs fail without a request', async () => {
  assertFailure(await get('ftp://example.com/a.jpg'), 'unsupported_scheme', 0);
  assertFailure(await get('file:///etc/passwd'), 'unsupported_scheme', 0);
  assertFailure(await get('data:image/png;base64,AAAA'), 'unsupported_scheme', 0);
  assertFailure(await get('not a url'), 'bad_url', 0);
  assertFailure(await get('http://'), 'bad_url', 0);
});

// undici waits one event-loop turn (setImmediate) before reusing a keep-alive socket, so a request sent
// right after the previous body ended may open a second connection; from then on the two alternate.
test('keep-alive: 20 sequential requests use at most 2 connections, also after a dropped connection', async () => {
  const counted = await startServer({
    '/img': sendImage,
    '/close': (_req, res) => res.writeHead(200, { connection: 'close' }).end(IMAGE),
  });
  try {
    await withDownloader({}, async (g) => {
      for (let i = 0; i < 20; i++) assert.ok((await g(counted.url('/img'))).ok);
      assert.ok(counted.connections() <= 2, `${counted.connections()} connections`);
      // undici 7.30's Agent loses keep-alive after a `Connection: close` (nodejs/undici#5022): not us.
      for (let i = 0; i < 2; i++) assert.ok((await g(counted.url('/close'))).ok);
      const before = counted.connections();
      for (let i = 0; i < 20; i++) assert.ok((await g(counted.url('/img'))).ok);
      assert.ok(counted.connections() - before <= 2, `${counted.connections() - before} new connections`);
    });
    assert.equal(counted.hits('/img'), 40);
  } finally {
    await counted.close();
  }
});

test('at most `concurrency` requests run at once, and get() after close() fails cleanly', async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const slow = await startServer({
    '/slow': (req, res) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      setTimeout(() => {
        inFlight--;
        sendImage(req, res);
      }, 40);
    },
  });
  try {
    const d = createDownloader({ ...BASE, concurrency: 2 });
    const results = await Promise.all(Array.from({ length: 6 }, () => d.get(slow.url('/slow'))));
    assert.ok(results.every((r) => r.ok));
    assert.equal(maxInFlight, 2);
    await d.close();
    assertFailure(await d.get(slow.url('/slow')), 'closed', 1);
  } finally {
    await slow.close();
  }
});

/** A self-signed certificate for 127.0.0.1, or null when openssl is not available. */
function selfSignedCert(): { key: string; cert: string } | null {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'muse-fetch-'));
  try {
    const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
  } catch {
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('HTTPS with a trusted self-signed certificate: connections and TLS sessions are reused', async (t) => {
  const tlsFiles = selfSignedCert();
  if (!tlsFiles) return t.skip('openssl not found: cannot make a self-signed certificate');
  const httpsServer = https.createServer(tlsFiles);
  let handshakes = 0;
  let resumed = 0;
  httpsServer.on('secureConnection', (s) => {
    handshakes++;
    // isSessionReused is only settled once the handshake is done, which it is here.
    if (s.isSessionReused()) resumed++;
  });
  const secure = await startServer(
    { '/img': sendImage, '/close': (_req, res) => res.writeHead(200, { connection: 'close' }).end(IMAGE) },
    httpsServer,
  );
  try {
    assertFailure(await get(secure.url('/img'), { retries: 0 }), 'tls', 1); // not trusted without the CA
    handshakes = 0;
    await withDownloader(
      {},
      async (g) => {
        // The server closes after each /close response: each new connection must resume the cached TLS session.
        for (let i = 0; i < 4; i++) assert.ok((await g(secure.url('/close'))).ok);
        assert.equal(handshakes, 4);
        assert.equal(resumed, 3, 'every connection after the first resumed the TLS session');
        const before = handshakes;
        for (let i = 0; i < 20; i++) assert.ok((await g(secure.url('/img'))).ok);
        assert.ok(handshakes - before <= 2, `20 keep-alive requests, ${handshakes - before} TLS handshakes`);
      },
      { ca: tlsFiles.cert },
    );
  } finally {
    await secure.close();
  }
});
