/**
 * `muse-data serve`: one fastify app with three spaces — opt-out (/optout), the dataset explorer (/datasets) and,
 * with checkpoints, the playground (/play) — over the data root's index. Request paths reach the file system only
 * through dataset names the index knows and sample keys found in it.
 */
import { compactionAdvice, sampleIndexCache, type SampleIndex } from '../dataset/sample-index.ts';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { openIndex, type DatasetRow, type IndexDb } from '../index-db/db.ts';
import { ShardFiles } from './explore/shard-files.ts';
import { syncDataset } from './explore/sync.ts';
import { optoutRoutes } from './optout-routes.ts';
import { exploreRoutes } from './explore-routes.ts';
import { playRoutes } from './play/play-routes.ts';
import { Playground } from './play/playground.ts';
import { staticRoutes } from './static-routes.ts';
import { html, page } from './html.ts';

export interface ServeOptions {
  dataRoot: string;
  /** Playground checkpoints (one, or two for side by side). */
  checkpoints?: string[];
  /** Bearer token of the admin API; none: the admin API answers 403. */
  adminToken?: string;
  /** Upload limits. */
  maxUploadBytes?: number;
  maxUploadPixels?: number;
  /** Requests per minute per client address for search (lookup, upload) and for generation. */
  searchRateLimit?: number;
  generateRateLimit?: number;
  /** Playground: waiting generations beyond the running one (more: 429). */
  maxQueue?: number;
  /** Playground feedback file (JSON lines). */
  feedbackFile?: string;
  logger?: boolean;
}

export const DEFAULT_LIMITS = {
  maxUploadBytes: 10 * 1024 * 1024,
  maxUploadPixels: 40_000_000,
  searchRateLimit: 120,
  generateRateLimit: 10,
  maxQueue: 4,
};

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** What the route modules share. */
export interface ServerContext {
  index: IndexDb;
  /** The sample index over every dataset's runs (src/dataset/sample-index.ts), reopened every few seconds. */
  samples: () => Promise<SampleIndex>;
  opts: ServeOptions & typeof DEFAULT_LIMITS;
  shardFiles: ShardFiles;
  playground?: Playground;
  /** A dataset by name (404 when the index does not know it), its explorer rows brought up to date. */
  dataset(name: string): Promise<DatasetRow>;
  datasets(): DatasetRow[];
  /** Routes that read their query themselves (and refuse unknown parameters there); the others take none. */
  queryRoutes: Set<string>;
  /** The dataset's shards whose manifest could not be read at the last sync (messages naming the files). */
  damaged(datasetId: number): string[];
  /**
   * A value computed from a dataset's explorer rows (counts of a filtered view), cached until the rows change:
   * a grid page then costs one LIMIT query instead of a count over the whole view.
   */
  cached<T>(datasetId: number, key: string, fn: () => T): T;
}

const CACHE_ENTRIES = 1000;

const SYNC_EVERY_MS = 1000;

/** Content types a cross-site page cannot send without a CORS preflight (which this server never grants). */
const POST_TYPES = /^(application\/json|application\/octet-stream|image\/[a-z0-9.+-]+)(;|$)/i;

type AjvError = { keyword: string; instancePath?: string; params?: Record<string, unknown> };

/**
 * Schema failures in words that name the input: the unknown key ("body must NOT have additional properties" named
 * none), and a body that is not JSON at all (image bytes posted to a JSON route). Null: keep fastify's message.
 */
function validationMessage(
  err: Error & { validation?: unknown; validationContext?: string },
  req: FastifyRequest,
): string | null {
  const first = Array.isArray(err.validation) ? (err.validation[0] as AjvError | undefined) : undefined;
  if (!first) return null;
  const where = err.validationContext ?? 'request';
  const type = String(req.headers['content-type'] ?? '');
  if (where === 'body' && !/^application\/json/i.test(type))
    return `${req.method} ${req.url.split('?')[0]} takes a JSON body (content type application/json), not ${JSON.stringify(type)}`;
  if (first.keyword === 'additionalProperties') {
    const key = String(first.params?.additionalProperty ?? '?');
    const at = first.instancePath ? `${where}${first.instancePath.replaceAll('/', '.')}` : where;
    return where === 'querystring'
      ? `unknown parameter "${key}"`
      : `${at} has an unknown key "${key}" (${err.message})`;
  }
  return null;
}

/** One structured line on stderr: what an operator greps for. */
function logLine(fields: Record<string, unknown>): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'error', ...fields }) + '\n');
}

export async function buildServer(o: ServeOptions): Promise<FastifyInstance> {
  const opts = { ...DEFAULT_LIMITS, ...o };
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: 64 * 1024,
    routerOptions: { maxParamLength: 200 },
    // Unknown keys in a JSON body are refused, not silently dropped (fastify's default removes them).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  const index = openIndex(o.dataRoot);
  const lastSync = new Map<number, number>();
  const generation = new Map<number, number>();
  const cache = new Map<string, unknown>();
  const damaged = new Map<number, string[]>();
  const sync = async (d: DatasetRow) => {
    const r = await syncDataset(index, d);
    if (r.loaded > 0) generation.set(d.id, (generation.get(d.id) ?? 0) + 1);
    const before = damaged.get(d.id) ?? [];
    if (r.damaged.join() !== before.join())
      for (const m of r.damaged.filter((x) => !before.includes(x)))
        logLine({ event: 'damaged_shard', dataset: d.name, error: m });
    damaged.set(d.id, r.damaged);
  };
  void compactionAdvice(index).then(
    (advice) => advice && logLine({ event: 'index_advice', message: advice }),
    (err: Error) => logLine({ event: 'index_advice', error: err.message }),
  );
  const ctx: ServerContext = {
    index,
    samples: sampleIndexCache(index),
    opts,
    shardFiles: new ShardFiles(),
    playground: o.checkpoints?.length
      ? new Playground(o.checkpoints, { maxQueue: opts.maxQueue, feedbackFile: o.feedbackFile })
      : undefined,
    datasets: () => index.datasets(),
    damaged: (datasetId) => damaged.get(datasetId) ?? [],
    queryRoutes: new Set(),
    async dataset(name) {
      const d = index.datasets().find((x) => x.name === name);
      if (!d)
        throw new HttpError(
          404,
          `no dataset '${name}' in this data root (known: ${
            index
              .datasets()
              .map((x) => x.name)
              .join(', ') || 'none'
          })`,
        );
      const now = Date.now();
      if (now - (lastSync.get(d.id) ?? 0) > SYNC_EVERY_MS) {
        lastSync.set(d.id, now);
        await sync(d);
      }
      return d;
    },
    cached(datasetId, key, fn) {
      const k = `${datasetId}\0${generation.get(datasetId) ?? 0}\0${key}`;
      if (cache.has(k)) return cache.get(k) as ReturnType<typeof fn>;
      const v = fn();
      cache.set(k, v);
      if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
      return v;
    },
  };
  for (const d of index.datasets()) await sync(d).catch(() => undefined);

  const upload = { parseAs: 'buffer' as const, bodyLimit: opts.maxUploadBytes };
  app.addContentTypeParser('application/octet-stream', upload, (_req, body, done) => done(null, body));
  app.addContentTypeParser(/^image\/[a-z0-9.+-]+$/i, upload, (_req, body, done) => done(null, body));
  await app.register(rateLimit, { global: false });

  // CSRF: state-changing requests must carry a non-form content type and, when the browser says where they come
  // from, come from this server's own pages.
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (req.method === 'GET' || req.method === 'HEAD') return;
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') throw new HttpError(403, 'cross-site requests are refused');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let host: string;
      try {
        host = new URL(origin).host;
      } catch {
        throw new HttpError(403, 'malformed Origin header');
      }
      if (host !== req.headers.host) throw new HttpError(403, `requests from ${origin} are refused`);
    } else if (origin === 'null') throw new HttpError(403, 'requests from an opaque origin are refused');
    const type = req.headers['content-type'] ?? '';
    if (!POST_TYPES.test(type))
      throw new HttpError(
        415,
        `content type ${JSON.stringify(type)} is not accepted: send application/json (or the image bytes for an upload)`,
      );
  });

  // A query parameter where the route takes none is refused by name (the README promises it), not ignored.
  app.addHook('preValidation', async (req: FastifyRequest) => {
    const route = req.routeOptions;
    if (!route.url || route.schema?.querystring || ctx.queryRoutes.has(route.url)) return;
    const keys = Object.keys((req.query as Record<string, unknown> | undefined) ?? {});
    if (keys.length)
      throw new HttpError(400, `unknown parameter "${keys[0]}" (${req.method} ${route.url} takes no query parameters)`);
  });

  app.setErrorHandler(
    (
      err: Error & { statusCode?: number; validation?: unknown; expose?: boolean },
      req: FastifyRequest,
      reply: FastifyReply,
    ) => {
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
      // Every 5xx, with its cause, on stderr as one JSON line (the fastify logger is off by default).
      if (status >= 500)
        logLine({
          event: 'error',
          status,
          method: req.method,
          url: req.url.slice(0, 500),
          error: err.message,
          stack: err.stack,
        });
      const message =
        status >= 500 && !err.expose
          ? 'internal error (see the server log)'
          : (validationMessage(err, req) ?? err.message);
      return reply.status(status).type('application/json').send({ error: message });
    },
  );
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: `no such page: ${req.method} ${req.url.slice(0, 200)}` }),
  );

  app.get('/', async (_req, reply) =>
    reply.type('text/html').send(
      page(
        'Home',
        html`<h1>muse data</h1>
          <ul>
            <li><a href="/optout">Find your images and opt out</a></li>
            <li><a href="/datasets">Explore the datasets</a></li>
            ${ctx.playground ? html`<li><a href="/play">Playground</a></li>` : ''}
          </ul>`,
        { play: !!ctx.playground },
      ),
    ),
  );
  staticRoutes(app);
  optoutRoutes(app, ctx);
  exploreRoutes(app, ctx);
  if (ctx.playground) playRoutes(app, ctx, ctx.playground);
  app.addHook('onClose', async () => {
    await ctx.playground?.close();
    index.close();
  });
  return app;
}
