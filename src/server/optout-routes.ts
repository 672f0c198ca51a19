/**
 * The opt-out space: look up an image URL or upload an image, see every sample holding it (dataset, key, shard,
 * status, thumbnail), file a request, follow its state. The admin API (bearer token) accepts or rejects requests;
 * operators can do the same with `muse-data optout requests`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import type { SampleRef } from '../index-db/db.ts';
import { checkUrl } from '../optout/check.ts';
import { UrlError, normalizeUrl } from '../optout/normalize-url.ts';
import { OptoutStore } from '../optout/store.ts';
import {
  RequestError,
  acceptRequest,
  appliedIn,
  fileRequest,
  listRequests,
  rejectRequest,
  requestById,
  requestByToken,
  type OptoutRequest,
} from '../optout/requests.ts';
import { HttpError, type ServerContext } from './app.ts';
import { UploadError, searchImage, MAX_PHASH_DISTANCE } from './image-search.ts';
import { esc, html, page, raw } from './html.ts';

const IN_TAR = new Set(['ok', 'fallback']);
/**
 * Default near-match distance of an upload search: wider than dedup's 6, because a person looking for their
 * image wants recall (results come nearest first, with their distance) and the recorded hash was taken from the
 * resized image, a few bits away from the original's.
 */
export const DEFAULT_SEARCH_DISTANCE = 10;

export function sampleJson(s: SampleRef & { distance?: number }) {
  return {
    dataset: s.dataset,
    key: s.key,
    shard: s.shard,
    status: s.status,
    ...(s.distance !== undefined ? { distance: s.distance } : {}),
    page: `/datasets/${encodeURIComponent(s.dataset)}/samples/${s.key}`,
    thumbnail: IN_TAR.has(s.status) ? `/thumbs/${encodeURIComponent(s.dataset)}/${s.key}.webp` : null,
  };
}

function publicRequest(ctx: ServerContext, r: OptoutRequest) {
  return {
    id: r.id,
    state: r.state,
    created: r.created,
    decided: r.decided,
    reason: r.reason,
    urls: r.urls,
    sha256s: r.sha256s,
    version: r.version,
    applied: appliedIn(ctx.index, r),
    page: `/optout/requests/${r.token}`,
  };
}

function requireAdmin(ctx: ServerContext, req: FastifyRequest): void {
  const want = ctx.opts.adminToken;
  if (!want) throw new HttpError(403, 'the admin API is disabled (start serve with --admin-token or MUSE_ADMIN_TOKEN)');
  const auth = req.headers.authorization ?? '';
  const got = Buffer.from(auth.startsWith('Bearer ') ? auth.slice(7) : '');
  const ok = got.length === Buffer.byteLength(want) && timingSafeEqual(got, Buffer.from(want));
  if (!ok) throw new HttpError(401, 'admin token missing or wrong (Authorization: Bearer <token>)');
}

const TOKEN = /^[0-9a-f]{32}$/;

export function optoutRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const store = new OptoutStore(ctx.index);
  const searchLimit = { rateLimit: { max: ctx.opts.searchRateLimit, timeWindow: '1 minute' } };

  app.get('/optout', async (_req, reply) =>
    reply.type('text/html').send(
      page(
        'Opt-out',
        html`<h1>Find your images and opt out</h1>
          <p class="muted">
            Search by the image's URL (compared after normalisation) or upload the image (exact bytes, and near copies
            by perceptual hash).
          </p>
          <div class="box">
            <form id="url-form" class="row">
              <label>Image URL<input id="url" name="url" size="70" required /></label
              ><button id="url-search">Search</button>
            </form>
          </div>
          <div class="box">
            <form id="upload-form" class="row">
              <label>Image file<input id="file" type="file" accept="image/*" required /></label>
              <label
                >Max distance<input
                  id="distance"
                  type="number"
                  min="0"
                  max="${MAX_PHASH_DISTANCE}"
                  value="${DEFAULT_SEARCH_DISTANCE}" /></label
              ><button id="upload-search">Search</button>
            </form>
          </div>
          <div id="results"></div>
          <div class="box" id="request-box">
            <h2>File an opt-out request</h2>
            <form id="request-form">
              <label>URLs (one per line)<br /><textarea id="req-urls" rows="4" cols="80"></textarea></label><br />
              <label>Image sha256 (one per line)<br /><textarea id="req-shas" rows="2" cols="80"></textarea></label
              ><br />
              <label>Contact (optional)<br /><input id="req-contact" size="40" /></label><br /><button id="req-submit">
                File request
              </button>
            </form>
            <p id="req-msg"></p>
          </div>`,
        { script: 'optout.js', play: !!ctx.playground },
      ),
    ),
  );

  app.get<{ Querystring: { url: string } }>(
    '/api/optout/lookup',
    {
      config: searchLimit,
      schema: {
        querystring: {
          type: 'object',
          required: ['url'],
          additionalProperties: false,
          properties: { url: { type: 'string', minLength: 1, maxLength: 4096 } },
        },
      },
    },
    async (req) => {
      let normalized: string;
      try {
        normalized = normalizeUrl(req.query.url);
      } catch (err) {
        if (err instanceof UrlError) throw new HttpError(400, `url: ${err.message}`);
        throw err;
      }
      const c = await checkUrl(store, req.query.url, await ctx.samples());
      return {
        url: c.url,
        normalized,
        optedOut: c.optedOut,
        storedAs: c.storedAs ?? null,
        byImage: c.byImage,
        samples: c.samples.map(sampleJson),
      };
    },
  );

  app.post<{ Querystring: { distance?: string } }>(
    '/api/optout/search-image',
    {
      config: searchLimit,
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { distance: { type: 'string', pattern: '^\\d{1,2}$' } },
        },
      },
    },
    async (req) => {
      if (!Buffer.isBuffer(req.body) || req.body.length === 0)
        throw new HttpError(400, 'send the image bytes as the request body (Content-Type: image/...)');
      try {
        const r = await searchImage(ctx.index, await ctx.samples(), req.body, {
          maxPixels: ctx.opts.maxUploadPixels,
          distance: req.query.distance === undefined ? DEFAULT_SEARCH_DISTANCE : Number(req.query.distance),
        });
        return {
          sha256: r.sha256,
          phash: r.phash,
          width: r.width,
          height: r.height,
          optedOut: store.hasImage(r.sha256),
          exact: r.exact.map(sampleJson),
          near: r.near.map(sampleJson),
        };
      } catch (err) {
        if (err instanceof UploadError) throw new HttpError(422, err.message);
        throw err;
      }
    },
  );

  app.post<{ Body: { urls?: string[]; sha256s?: string[]; contact?: string } }>(
    '/api/optout/requests',
    {
      config: searchLimit,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            urls: { type: 'array', items: { type: 'string' }, maxItems: 1000 },
            sha256s: { type: 'array', items: { type: 'string' }, maxItems: 1000 },
            contact: { type: 'string', maxLength: 320 },
          },
        },
      },
    },
    async (req, reply) => {
      try {
        const r = fileRequest(ctx.index, req.body ?? {});
        return reply.status(201).send({ ...publicRequest(ctx, r), token: r.token });
      } catch (err) {
        if (err instanceof RequestError) throw new HttpError(400, err.message);
        throw err;
      }
    },
  );

  const byToken = (token: string) => {
    const r = TOKEN.test(token) ? requestByToken(ctx.index, token) : undefined;
    if (!r) throw new HttpError(404, 'no opt-out request with this id');
    return r;
  };
  app.get<{ Params: { token: string } }>('/api/optout/requests/:token', async (req) =>
    publicRequest(ctx, byToken(req.params.token)),
  );
  app.get<{ Params: { token: string } }>('/optout/requests/:token', async (req, reply) => {
    const r = publicRequest(ctx, byToken(req.params.token));
    const state =
      r.state === 'accepted'
        ? html`accepted (opt-out list version
          ${r.version})${r.applied.length ? html`, <span class="ok">applied in ${raw(r.applied.map((a) => `<b>${esc(a.dataset)}</b> at ${esc(a.applied)}`).join(', '))}</span>` : ', not yet applied to any dataset'}`
        : r.state === 'rejected'
          ? html`rejected${r.reason ? html`: ${r.reason}` : ''}`
          : html`pending (an operator reviews it)`;
    return reply.type('text/html').send(
      page(
        'Opt-out request',
        html`<h1>Opt-out request ${r.id}</h1>
          <p>State: <span id="state" data-state="${r.state}">${state}</span></p>
          <p class="muted">
            Filed ${r.created}${r.decided ? html`, decided ${r.decided}` : ''}. Keep this page's address to follow the
            request.
          </p>
          <h2>URLs</h2>
          ${
            r.urls.length
              ? html`<ul>
                  ${r.urls.map((u) => html`<li>${u}</li>`)}
                </ul>`
              : html`<p class="muted">none</p>`
          }
          <h2>Images (sha256)</h2>
          ${
            r.sha256s.length
              ? html`<ul>
                  ${r.sha256s.map((h) => html`<li><code>${h}</code></li>`)}
                </ul>`
              : html`<p class="muted">none</p>`
          }`,
        { play: !!ctx.playground },
      ),
    );
  });

  // Admin API: everything here changes the index, so every route needs the token.
  app.get<{ Querystring: { state?: string } }>(
    '/api/admin/requests',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { state: { enum: ['pending', 'accepted', 'rejected'] } },
        },
      },
    },
    async (req) => {
      requireAdmin(ctx, req);
      return {
        requests: listRequests(ctx.index, req.query.state as 'pending' | undefined).map((r) => ({
          ...publicRequest(ctx, r),
          contact: r.contact,
        })),
      };
    },
  );
  app.post<{ Params: { id: string; action: string }; Body: { reason?: string } | undefined }>(
    '/api/admin/requests/:id/:action',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { reason: { type: 'string', maxLength: 500 } },
        },
      },
    },
    async (req) => {
      requireAdmin(ctx, req);
      const id = /^\d{1,12}$/.test(req.params.id) ? Number(req.params.id) : NaN;
      if (!requestById(ctx.index, id)) throw new HttpError(404, `no opt-out request ${req.params.id}`);
      try {
        if (req.params.action === 'accept') return publicRequest(ctx, acceptRequest(ctx.index, id));
        if (req.params.action === 'reject') return publicRequest(ctx, rejectRequest(ctx.index, id, req.body?.reason));
      } catch (err) {
        if (err instanceof RequestError) throw new HttpError(409, err.message);
        throw err;
      }
      throw new HttpError(404, `unknown action ${JSON.stringify(req.params.action)} (accept or reject)`);
    },
  );
}
