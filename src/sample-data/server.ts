/**
 * HTTP server for the bundled sample dataset, on 127.0.0.1 only.
 *
 * URL scheme: `GET|HEAD /img/<row>.<ext>` where <row> is the catalog row in plain decimal (no leading
 * zeros) and <ext> is that row's format (jpg | png | webp); the query string is ignored. The answer is
 * what `renderSampleImage` gives for the row (dead rows 404/500, the noai row carries X-Robots-Tag, ...).
 * Any other path, or a wrong extension, is 404; other methods are 405. Keep-alive is on.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sampleCatalog, type SampleItem } from './catalog.ts';
import { renderSampleImage, type SampleResponse } from './render.ts';

export interface SampleServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  origin: string;
  close(): Promise<void>;
  /** Requests received so far, whatever their outcome. */
  requestCount(): number;
}

const CACHE_ENTRIES = 64;
const PATH_RE = /^\/img\/(0|[1-9]\d*)\.(jpg|png|webp)$/;

export async function startSampleServer(opts: { port?: number } = {}): Promise<SampleServer> {
  const catalog = sampleCatalog();
  // Small LRU of in-flight or finished renders (Map keeps insertion order; re-insert on hit).
  const cache = new Map<number, Promise<SampleResponse>>();
  const render = (item: SampleItem): Promise<SampleResponse> => {
    let p = cache.get(item.row);
    if (p) cache.delete(item.row);
    else p = renderSampleImage(item);
    cache.set(item.row, p);
    if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    p.catch(() => cache.delete(item.row));
    return p;
  };

  let requests = 0;
  const server = http.createServer({ keepAlive: true }, (req, res) => {
    requests++;
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`render error: ${String(err)}\n`);
    });
  });
  server.keepAliveTimeout = 30_000;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Method Not Allowed\n');
      return;
    }
    const m = PATH_RE.exec((req.url ?? '').split('?')[0]);
    const item = m ? catalog[Number(m[1])] : undefined;
    if (!item || item.format !== m![2]) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Not Found\n');
      return;
    }
    const r = await render(item);
    res.writeHead(r.status, {
      'Content-Type': r.contentType,
      'Content-Length': String(r.body.length),
      ...r.headers,
    });
    res.end(req.method === 'HEAD' ? undefined : r.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    requestCount: () => requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections(); // idle keep-alive sockets would otherwise hold close() open
      }),
  };
}
