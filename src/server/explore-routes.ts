/**
 * The dataset explorer: counts by status and reason, a filtered and paged grid, a sample's page, JSON / CSV export
 * of the filtered view, and thumbnails read from the shard tars. Pages are rendered on the server (GET forms).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DatasetRow } from '../index-db/db.ts';
import { lastApplied } from '../optout/requests.ts';
import { optoutVersion, OptoutStore } from '../optout/store.ts';
import { checkUrl } from '../optout/check.ts';
import { HttpError, type ServerContext } from './app.ts';
import { barChart, html, page, raw, type Raw } from './html.ts';
import {
  FilterError,
  counts,
  countRows,
  iterateRows,
  pageRows,
  parseFilters,
  sampleRow,
  type ExploreRow,
  type Filters,
} from './explore/query.ts';
import { DamagedFileError, type ShardFiles } from './explore/shard-files.ts';

const KEY = /^\d{9,12}$/;
const PER_DEFAULT = 48;
const PER_MAX = 200;
const IN_TAR = new Set(['ok', 'fallback']);

type Q = Record<string, string>;

function filtersOf(q: Q): { f: Filters; page: number; per: number } {
  try {
    const f = parseFilters(q);
    const pageNo = q.page ? Number(q.page) : 1;
    const per = q.per ? Number(q.per) : PER_DEFAULT;
    if (!(Number.isInteger(pageNo) && pageNo >= 1 && pageNo <= 1e7))
      throw new FilterError(`page must be an integer >= 1, got ${JSON.stringify(q.page)}`);
    if (!(Number.isInteger(per) && per >= 1 && per <= PER_MAX))
      throw new FilterError(`per must be an integer in 1..${PER_MAX}, got ${JSON.stringify(q.per)}`);
    return { f, page: pageNo, per };
  } catch (err) {
    if (err instanceof FilterError) throw new HttpError(400, err.message);
    throw err;
  }
}

function key(k: string): string {
  if (!KEY.test(k)) throw new HttpError(400, `not a sample key (9-12 digits): ${JSON.stringify(k.slice(0, 40))}`);
  return k;
}

const thumb = (d: DatasetRow, r: { key: string; status: string }) =>
  IN_TAR.has(r.status) ? `/thumbs/${encodeURIComponent(d.name)}/${r.key}.webp` : null;

function rowJson(d: DatasetRow, r: ExploreRow) {
  return {
    ...r,
    meta: r.meta ? (JSON.parse(r.meta) as unknown) : null,
    thumbnail: thumb(d, r),
    page: `/datasets/${encodeURIComponent(d.name)}/samples/${r.key}`,
  };
}

const CSV_COLS = [
  'key',
  'shard',
  'status',
  'reason',
  'width',
  'height',
  'original_width',
  'original_height',
  'url',
  'caption',
  'meta',
] as const;

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function queryString(q: Q, change: Q): string {
  const p = new URLSearchParams({ ...q, ...change });
  for (const [k, v] of [...p]) if (v === '') p.delete(k);
  const s = p.toString();
  return s ? `?${s}` : '';
}

export function exploreRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const store = new OptoutStore(ctx.index);
  const play = !!ctx.playground;
  // These read their query with filtersOf (which refuses unknown parameters); the server refuses any elsewhere.
  for (const url of ['/api/datasets/:name/samples', '/datasets/:name/export.:format', '/datasets/:name'])
    ctx.queryRoutes.add(url);

  app.get('/api/datasets', async () => ({
    datasets: ctx
      .datasets()
      .map((d) => ({ name: d.name, registered: d.registered, optout: lastApplied(ctx.index, d.id) })),
  }));
  app.get('/datasets', async (_req, reply) => {
    const rows = ctx.datasets();
    return reply.type('text/html').send(
      page(
        'Datasets',
        html`<h1>Datasets</h1>
          ${
            rows.length
              ? html`<ul>
                  ${rows.map((d) => html`<li><a href="/datasets/${encodeURIComponent(d.name)}">${d.name}</a> <span class="muted">registered ${d.registered}</span></li>`)}
                </ul>`
              : html`<p>No dataset in this data root yet (fetch registers them).</p>`
          }`,
        { play },
      ),
    );
  });

  const total = (d: DatasetRow, f: Filters) =>
    ctx.cached(d.id, `total ${JSON.stringify(f)}`, () => countRows(ctx.index, d.id, f));
  const summary = (d: DatasetRow) => {
    const c = ctx.cached(d.id, 'counts', () => counts(ctx.index, d.id));
    return {
      name: d.name,
      counts: Object.fromEntries(c.status),
      reasons: Object.fromEntries(c.reasons),
      metaColumns: c.metaColumns,
      optout: { current: optoutVersion(ctx.index), lastApplied: lastApplied(ctx.index, d.id) },
      damaged: ctx.damaged(d.id),
    };
  };

  app.get<{ Params: { name: string }; Querystring: Q }>('/api/datasets/:name', async (req) =>
    summary(await ctx.dataset(req.params.name)),
  );

  app.get<{ Params: { name: string }; Querystring: Q }>('/api/datasets/:name/samples', async (req) => {
    const d = await ctx.dataset(req.params.name);
    const { f, page: p, per } = filtersOf(req.query);
    return {
      total: total(d, f),
      page: p,
      per,
      samples: pageRows(ctx.index, d.id, f, (p - 1) * per, per).map((r) => rowJson(d, r)),
    };
  });

  app.get<{ Params: { name: string; format: string }; Querystring: Q }>(
    '/datasets/:name/export.:format',
    async (req, reply: FastifyReply) => {
      const d = await ctx.dataset(req.params.name);
      const { f } = filtersOf(req.query);
      const fmt = req.params.format;
      if (fmt !== 'csv' && fmt !== 'json')
        throw new HttpError(404, `export as csv or json, not ${JSON.stringify(fmt)}`);
      const rows = iterateRows(ctx.index, d.id, f);
      const name = `${d.name}-export.${fmt}`;
      reply.header('content-disposition', `attachment; filename="${name.replace(/[^\w.-]/g, '_')}"`);
      const parts: string[] = [];
      if (fmt === 'csv') {
        parts.push(CSV_COLS.join(',') + '\n');
        for (const r of rows) parts.push(CSV_COLS.map((c) => csvCell(r[c])).join(',') + '\n');
        return reply.type('text/csv; charset=utf-8').send(parts.join(''));
      }
      const out = [];
      for (const r of rows) out.push({ ...r, meta: r.meta ? (JSON.parse(r.meta) as unknown) : null });
      return reply.type('application/json').send(JSON.stringify(out));
    },
  );

  app.get<{ Params: { name: string }; Querystring: Q }>('/datasets/:name', async (req, reply) => {
    const d = await ctx.dataset(req.params.name);
    const { f, page: p, per } = filtersOf(req.query);
    const s = summary(d);
    const totalRows = total(d, f);
    const rows = pageRows(ctx.index, d.id, f, (p - 1) * per, per);
    const pages = Math.max(1, Math.ceil(totalRows / per));
    const q = req.query;
    const base = `/datasets/${encodeURIComponent(d.name)}`;
    const statusOpts = ['', ...Object.keys(s.counts)].map(
      (v) => html`<option value="${v}" ${q.status === v ? raw(' selected') : ''}>${v || 'any'}</option>`,
    );
    const reasons = [...new Set(Object.keys(s.reasons).map((r) => r.split(': ')[1]))];
    const reasonOpts = ['', ...reasons].map(
      (v) => html`<option value="${v}" ${q.reason === v ? raw(' selected') : ''}>${v || 'any'}</option>`,
    );
    const metaInputs = s.metaColumns
      .slice(0, 6)
      .map((c) => html`<label>${c}<input name="meta.${c}" value="${q[`meta.${c}`] ?? ''}" size="8" /></label>`);
    const la = s.optout.lastApplied;
    const cards: Raw[] = rows.map((r) => {
      const t = thumb(d, r);
      return html`<div class="card" data-key="${r.key}">
        <a href="${base}/samples/${r.key}"
          >${t ? html`<img src="${t}" alt="" loading="lazy" />` : html`<div class="muted" style="width:128px;height:128px">no image</div>`}</a
        >
        <div>
          <a href="${base}/samples/${r.key}">${r.key}</a> <b>${r.status}</b>${r.reason ? html` · ${r.reason}` : ''}
        </div>
        <div class="muted">${(r.caption ?? '').slice(0, 80)}</div>
      </div>`;
    });
    return reply.type('text/html').send(
      page(
        d.name,
        html`<h1>Dataset ${d.name}</h1>
          ${
            s.damaged.length
              ? html`<div id="damaged" class="err">
                  <p>Shards left out (their manifest cannot be read):</p>
                  <ul>
                    ${s.damaged.map((m) => html`<li>${m}</li>`)}
                  </ul>
                </div>`
              : ''
          }
          <p id="optout-state">
            Opt-out list version ${s.optout.current};
            ${la ? html`last applied to this dataset at version <b>${la.version}</b> (${la.applied})` : html`opt-outs never applied to this dataset`}.
          </p>
          <div class="side">
            <div>
              <h2>By status</h2>
              ${barChart(Object.entries(s.counts), 'chart-status')}
            </div>
            <div>
              <h2>By reason</h2>
              ${barChart(Object.entries(s.reasons), 'chart-reason')}
            </div>
          </div>
          <h2>Samples</h2>
          <form class="row" id="filters" method="get" action="${base}">
            <label
              >Status<select name="status">
                ${statusOpts}
              </select></label
            ><label
              >Reason<select name="reason">
                ${reasonOpts}
              </select></label
            >
            <label>Caption search<input name="q" value="${q.q ?? ''}" /></label
            ><label>Min width<input name="min_width" value="${q.min_width ?? ''}" size="5" /></label
            ><label>Min height<input name="min_height" value="${q.min_height ?? ''}" size="5" /></label>
            ${metaInputs}<button id="apply-filters">Filter</button>
          </form>
          <p>
            <span id="total">${totalRows}</span> sample(s) · page ${p} of ${pages}
            ${p > 1 ? html` · <a id="prev" href="${base}${queryString(q, { page: String(p - 1) })}">previous</a>` : ''}${p < pages ? html` · <a id="next" href="${base}${queryString(q, { page: String(p + 1) })}">next</a>` : ''}
            · export <a href="${base}/export.json${queryString(q, { page: '', per: '' })}">JSON</a>
            <a href="${base}/export.csv${queryString(q, { page: '', per: '' })}">CSV</a>
          </p>
          <div class="grid" id="grid">${cards}</div>`,
        { play },
      ),
    );
  });

  const sampleDetail = async (name: string, k: string) => {
    const d = await ctx.dataset(name);
    const r = sampleRow(ctx.index, d.id, key(k));
    if (!r) throw new HttpError(404, `no sample ${k} in dataset '${d.name}'`);
    let files: ReturnType<ShardFiles['read']>;
    let damaged: string | null = null;
    try {
      files = IN_TAR.has(r.status) ? ctx.shardFiles.read(d.path, r.shard, r.key) : undefined;
    } catch (err) {
      if (!(err instanceof DamagedFileError)) throw err;
      damaged = err.message; // the manifest row is still shown
    }
    const hasDecisions =
      ctx.index.stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dedup_decisions'").pluck().get() !==
      undefined;
    type Dup = { dataset: string; key: string; kind: string; distance: number | null };
    const duplicateOf = hasDecisions
      ? (ctx.index
          .stmt(
            'SELECT d.name AS dataset, x.duplicate_of_key AS key, x.kind, x.distance FROM dedup_decisions x JOIN datasets d ON d.id = x.duplicate_of_dataset WHERE x.dataset_id = ? AND x.key = ?',
          )
          .all(d.id, r.key) as Dup[])
      : [];
    const duplicates = hasDecisions
      ? (ctx.index
          .stmt(
            'SELECT d.name AS dataset, x.key, x.kind, x.distance FROM dedup_decisions x JOIN datasets d ON d.id = x.dataset_id WHERE x.duplicate_of_dataset = ? AND x.duplicate_of_key = ? ORDER BY x.key LIMIT 100',
          )
          .all(d.id, r.key) as Dup[])
      : [];
    let optout: { optedOut: boolean; byUrl: boolean; byImage: boolean } = {
      optedOut: false,
      byUrl: false,
      byImage: false,
    };
    try {
      const c = await checkUrl(store, r.url, await ctx.samples());
      optout = { optedOut: c.optedOut, byUrl: c.storedAs !== undefined, byImage: c.byImage };
    } catch {
      // a row whose URL does not parse (it failed to fetch)
    }
    return {
      d,
      r,
      json: files?.json ?? null,
      image: files?.image ? `/images/${encodeURIComponent(d.name)}/${r.key}` : null,
      duplicateOf,
      duplicates,
      optout,
      damaged,
    };
  };

  app.get<{ Params: { name: string; key: string } }>('/api/datasets/:name/samples/:key', async (req) => {
    const s = await sampleDetail(req.params.name, req.params.key);
    return {
      manifest: rowJson(s.d, s.r),
      json: s.json,
      image: s.image,
      duplicateOf: s.duplicateOf,
      duplicates: s.duplicates,
      optout: s.optout,
      ...(s.damaged ? { damaged: s.damaged } : {}),
    };
  });

  app.get<{ Params: { name: string; key: string } }>('/datasets/:name/samples/:key', async (req, reply) => {
    const s = await sampleDetail(req.params.name, req.params.key);
    const base = `/datasets/${encodeURIComponent(s.d.name)}`;
    const dupList = (rows: typeof s.duplicates) =>
      html`<ul>
        ${rows.map((x) => html`<li><a href="/datasets/${encodeURIComponent(x.dataset)}/samples/${x.key}">${x.dataset} ${x.key}</a> (${x.kind}${x.distance !== null ? html`, distance ${x.distance}` : ''})</li>`)}
      </ul>`;
    const manifest = { ...s.r, meta: s.r.meta ? (JSON.parse(s.r.meta) as unknown) : null };
    return reply.type('text/html').send(
      page(
        `${s.d.name} ${s.r.key}`,
        html`<h1><a href="${base}">${s.d.name}</a> / ${s.r.key}</h1>
          <div class="side">
            <div>
              ${s.image ? html`<img id="sample-image" src="${s.image}" alt="sample ${s.r.key}" />` : s.damaged ? html`<p class="err" id="damaged">${s.damaged}</p>` : html`<p class="muted">not in the shard (status ${s.r.status})</p>`}
            </div>
            <div>
              <p id="caption">${s.r.caption ?? ''}</p>
              <p>
                Status <b id="status">${s.r.status}</b>${s.r.reason ? html` (${s.r.reason})` : ''} · shard ${s.r.shard}
              </p>
              <p id="sample-optout">
                ${s.optout.optedOut ? html`<span class="err">opted out</span> (${s.optout.byUrl ? 'by URL' : 'by image'})` : 'not opted out'}
              </p>
            </div>
          </div>
          <h2>Duplicates</h2>
          ${
            s.duplicateOf.length
              ? html`<p>Duplicate of:</p>
                  ${dupList(s.duplicateOf)}`
              : ''
          }${
            s.duplicates.length
              ? html`<p>Duplicated by:</p>
                  ${dupList(s.duplicates)}`
              : ''
          }${s.duplicateOf.length + s.duplicates.length ? '' : html`<p class="muted">none recorded (run muse-data dedup)</p>`}
          <h2>Manifest row</h2>
          <pre>${JSON.stringify(manifest, null, 2)}</pre>
          <h2>Sample JSON</h2>
          <pre>${s.json ? JSON.stringify(s.json, null, 2) : '(not in the shard)'}</pre>`,
        { play },
      ),
    );
  });

  const sampleInTar = async (name: string, k: string) => {
    const d = await ctx.dataset(name);
    const r = sampleRow(ctx.index, d.id, key(k));
    if (!r || !IN_TAR.has(r.status)) throw new HttpError(404, `no image for sample ${k} in dataset '${d.name}'`);
    return { d, r };
  };
  app.get<{ Params: { name: string; key: string } }>('/thumbs/:name/:key', async (req, reply) => {
    const k = req.params.key.replace(/\.webp$/, '');
    const { d, r } = await sampleInTar(req.params.name, k);
    const t = await ctx.shardFiles.thumbnail(d.path, r.shard, r.key);
    if (!t) throw new HttpError(404, `sample ${k} is not in its shard`);
    return reply.type('image/webp').header('cache-control', 'no-cache').send(t);
  });
  app.get<{ Params: { name: string; key: string } }>('/images/:name/:key', async (req, reply) => {
    const { d, r } = await sampleInTar(req.params.name, req.params.key);
    const f = ctx.shardFiles.read(d.path, r.shard, r.key);
    if (!f?.image) throw new HttpError(404, `sample ${r.key} is not in its shard`);
    return reply.type(f.image.type).header('cache-control', 'no-cache').send(f.image.bytes);
  });
}
