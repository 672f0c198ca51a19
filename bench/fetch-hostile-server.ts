/**
 * The origins of `npm run bench -- fetch-hostile`, in their own process (forked by bench/fetch-hostile.ts) so
 * their CPU is not the fetch's. Every origin is a port on 127.0.0.1; what a URL gets is decided by its row
 * (bench/fetch-hostile-corpus.ts), so the same corpus always meets the same web:
 *
 * - `main`: most rows; the mix users met per row (hang = accepted and never answered, reset, slow 0.3–3 s, 404,
 *   redirect, HTML, `X-Robots-Tag: noai`), the rest images. It also serves the clean corpus (every row an image).
 * - `dying`: a large origin that answers normally until it has answered half of its rows, then accepts every
 *   request and never answers (`reset` message brings it back to life for the next fetch).
 * - `refused`: a port with nothing listening (connection refused).
 * - `tls_hang`: an https URL on a TCP listener that accepts and never speaks: the TLS handshake never completes.
 * - `body_hang`: headers and half the body, then nothing.
 * - `rate_limited`: the first request for each URL gets 429 with `Retry-After: 1`, later ones the image.
 * - `small0` … `small9`: small healthy origins.
 *
 * IPC: { type: 'start', dir, images } -> { type: 'ready', ports }; { type: 'reset' } -> { type: 'reset_done' };
 * { type: 'usage' } -> { type: 'usage', cpuMs, requests }.
 */
import http from 'node:http';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { catalog, itemFile } from './fetch-data.ts';
import { ORIGINS, rowOf, type OriginName, type Row } from './fetch-hostile-corpus.ts';

export type ToHostile =
  { type: 'start'; dir: string; images: number; rows: number } | { type: 'reset' } | { type: 'usage' };
export type FromHostile =
  | { type: 'ready'; ports: Record<OriginName, number> }
  | { type: 'reset_done' }
  | { type: 'usage'; cpuMs: number; requests: number };

const MIME = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' } as const;
const PATH_RE = /^\/(clean|r)\/(\d+)(\/final)?$/;

async function start(m: Extract<ToHostile, { type: 'start' }>): Promise<void> {
  const items = catalog(m.images);
  const bodies = await Promise.all(
    items.map(async (it) => ({ bytes: await readFile(itemFile(m.dir, it)), mime: MIME[it.format] })),
  );
  const dyingRows = Array.from({ length: m.rows }, (_, i) => rowOf(i)).filter((r) => r.origin === 'dying').length;
  let requests = 0;
  let dyingAnswered = 0;
  const rateLimitedSeen = new Set<number>();
  const sockets = new Set<net.Socket>();

  const image = (res: http.ServerResponse, row: number) => {
    const b = bodies[row % bodies.length];
    res.writeHead(200, { 'content-type': b.mime, 'content-length': String(b.bytes.length) });
    res.end(b.bytes);
  };
  const handler = (origin: OriginName) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests++;
    const match = PATH_RE.exec(req.url ?? '');
    if (!match) return void res.writeHead(404).end('not found');
    const index = Number(match[2]);
    if (match[1] === 'clean' || match[3]) return image(res, index);
    const row: Row = rowOf(index);
    switch (origin) {
      case 'dying':
        if (dyingAnswered >= dyingRows / 2) return; // dead: accepted, never answered
        dyingAnswered++;
        return image(res, index);
      case 'body_hang': {
        const b = bodies[index % bodies.length];
        res.writeHead(200, { 'content-type': b.mime, 'content-length': String(b.bytes.length) });
        res.write(b.bytes.subarray(0, b.bytes.length >> 1));
        return; // the rest never comes
      }
      case 'rate_limited':
        if (!rateLimitedSeen.has(index)) {
          rateLimitedSeen.add(index);
          return void res.writeHead(429, { 'retry-after': '1', 'content-length': '5' }).end('slow\n');
        }
        return image(res, index);
      case 'main':
        switch (row.kind) {
          case 'hang':
            return;
          case 'reset':
            return void req.socket.destroy();
          case 'slow':
            return void setTimeout(() => image(res, index), row.delayMs);
          case 'dead':
            return void res.writeHead(404, { 'content-length': '10' }).end('Not Found\n');
          case 'redirect':
            return void res.writeHead(302, { location: `/r/${index}/final`, 'content-length': '0' }).end();
          case 'html':
            return void res
              .writeHead(200, { 'content-type': 'text/html' })
              .end('<!doctype html><title>moved</title><p>This image has moved.</p>');
          case 'noai':
            res.setHeader('x-robots-tag', 'noai');
            return image(res, index);
          default:
            return image(res, index);
        }
      default:
        return image(res, index);
    }
  };

  const ports = {} as Record<OriginName, number>;
  const listen = (s: net.Server) =>
    new Promise<number>((ok) => s.listen(0, '127.0.0.1', () => ok((s.address() as net.AddressInfo).port)));
  for (const origin of ORIGINS) {
    if (origin === 'refused') {
      // a port that was free a moment ago, with nothing listening on it now
      const probe = net.createServer();
      ports[origin] = await listen(probe);
      await new Promise((ok) => probe.close(ok));
    } else if (origin === 'tls_hang') {
      const silent = net.createServer((s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      ports[origin] = await listen(silent);
    } else {
      const server = http.createServer(
        { keepAlive: true, keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 0 },
        handler(origin),
      );
      server.keepAliveTimeout = 60_000;
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      ports[origin] = await listen(server);
    }
  }
  process.send!({ type: 'ready', ports } satisfies FromHostile);

  process.on('message', (msg: ToHostile) => {
    if (msg.type === 'usage') {
      const u = process.cpuUsage();
      process.send!({ type: 'usage', cpuMs: (u.user + u.system) / 1000, requests } satisfies FromHostile);
    } else if (msg.type === 'reset') {
      // between fetches: the dying origin lives again, rate limits forget, hung sockets are dropped
      dyingAnswered = 0;
      rateLimitedSeen.clear();
      for (const s of sockets) s.destroy();
      process.send!({ type: 'reset_done' } satisfies FromHostile);
    }
  });
}

if (process.send) {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (m: ToHostile) => {
    if (m.type === 'start') void start(m);
  });
}
