/**
 * The web server of `npm run bench -- fetch`, run as its own process (forked by bench/fetch.ts) so that its
 * CPU is not counted as the fetch's. Serves the cached catalog over HTTP and HTTPS on 127.0.0.1 from memory:
 * `GET /img/<index>.<ext>`; dead items answer 404, slow items answer after their delay. Keep-alive on.
 *
 * IPC: receives { dir, count, cert, key }, answers { type: 'ready', http, https } (ports); on { type: 'usage' }
 * answers { type: 'usage', cpuMs, requests, connections }.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { catalog, itemFile, type CatalogItem } from './fetch-data.ts';

export type ToServer =
  | {
      type: 'start';
      dir: string;
      count: number;
      cert: string;
      key: string;
      /** serve slow links at once (diagnosis) */ noSlow?: boolean;
    }
  | { type: 'usage' };
export type FromServer =
  | { type: 'ready'; http: number; https: number }
  | {
      type: 'usage';
      cpuMs: number;
      requests: number;
      /** connections accepted (TLS: completed handshakes) */ connections: number;
    };

const MIME = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' } as const;
const PATH_RE = /^\/img\/(\d+)\.(jpg|png|webp)$/;

async function start(m: Extract<ToServer, { type: 'start' }>): Promise<void> {
  const items = catalog(m.count);
  const bodies = new Map<number, Buffer>();
  for (const it of items) if (it.kind !== 'dead') bodies.set(it.index, await readFile(itemFile(m.dir, it)));
  let requests = 0;
  let connections = 0;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests++;
    const match = PATH_RE.exec(req.url ?? '');
    const item: CatalogItem | undefined = match ? items[Number(match[1])] : undefined;
    const body = item ? bodies.get(item.index) : undefined;
    if (!item || !body || item.format !== match![2]) {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '10' });
      res.end('Not Found\n');
      return;
    }
    const send = () => {
      res.writeHead(200, {
        'content-type': MIME[item.format],
        'content-length': String(body.length),
        'cache-control': 'max-age=86400',
      });
      res.end(body);
    };
    if (item.kind === 'slow' && !m.noSlow) setTimeout(send, item.delayMs);
    else send();
  };

  const opts = { keepAlive: true, keepAliveTimeout: 60_000, requestTimeout: 0 };
  const plain = http.createServer(opts, handler);
  const secure = https.createServer({ ...opts, cert: await readFile(m.cert), key: await readFile(m.key) }, handler);
  for (const s of [plain, secure]) s.keepAliveTimeout = 60_000;
  plain.on('connection', () => connections++);
  secure.on('secureConnection', () => connections++);
  await Promise.all([plain, secure].map((s) => new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok))));
  process.send!({
    type: 'ready',
    http: (plain.address() as AddressInfo).port,
    https: (secure.address() as AddressInfo).port,
  } satisfies FromServer);

  process.on('message', (msg: ToServer) => {
    if (msg.type === 'usage') {
      const u = process.cpuUsage();
      process.send!({ type: 'usage', cpuMs: (u.user + u.system) / 1000, requests, connections } satisfies FromServer);
    }
  });
}

if (process.send) {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (m: ToServer) => {
    if (m.type === 'start') void start(m);
  });
}
