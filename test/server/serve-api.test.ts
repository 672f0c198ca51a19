/**
 * `muse-data serve` through its HTTP API (fastify inject, and a real socket where Node's own limits matter): the
 * index migration, opt-out lookup by URL and by upload, requests and their states through the CLI and apply,
 * the explorer's filters, paging and export, and the security limits (4xx with a message, the server keeps serving).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { INDEX_FILE, openIndex } from '../../src/index-db/db.ts';
import { MIGRATIONS } from '../../src/index-db/schema.ts';
import { OptoutStore, optoutVersion } from '../../src/optout/store.ts';
import { buildServer, type ServeOptions } from '../../src/server/app.ts';
import { copyDataRoot, fetchSample, originalImage, type ServeFixture } from '../helpers/serve-fixture.ts';
import { dhash64, hammingDistance } from '../../src/image/index.ts';
import { DEFAULT_SEARCH_DISTANCE } from '../../src/server/optout-routes.ts';
import { runCli } from '../helpers/cli.ts';

let fixture: ServeFixture | undefined;
const sampleData = async () => (fixture ??= await fetchSample('serve-api'));

/** A private copy of the fixture's data root (tests change the index and the shards). */
async function copyRoot(): Promise<{ dataRoot: string; dataset: string; f: ServeFixture }> {
  const f = await sampleData();
  return { ...(await copyDataRoot(f.dataRoot, 'serve-copy')), f };
}

async function withServer(
  opts: Partial<ServeOptions> & { dataRoot: string },
  fn: (app: FastifyInstance) => Promise<void>,
): Promise<void> {
  const app = await buildServer(opts);
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

const json = (r: { body: string }) => JSON.parse(r.body) as Record<string, any>;

test('an index made before opt-out versions and requests opens, migrates, and keeps its data', async () => {
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'muse-serve-migrate-'));
  // The schema as released (migration 1 only), with an opt-out and a sample in it.
  const db = new Database(path.join(dataRoot, INDEX_FILE));
  db.exec(MIGRATIONS[0]);
  db.pragma('user_version = 1');
  db.prepare(
    "INSERT INTO datasets(name, path, registered) VALUES ('old', '/nowhere/old', '2026-01-01T00:00:00.000Z')",
  ).run();
  db.close();
  const index = openIndex(dataRoot);
  try {
    assert.equal(index.db.pragma('user_version', { simple: true }), MIGRATIONS.length);
    assert.deepEqual(
      index.datasets().map((d) => d.name),
      ['old'],
    );
    const store = new OptoutStore(index);
    assert.equal(optoutVersion(index), 0);
    store.addUrls(['http://a.example/1.jpg']);
    assert.equal(optoutVersion(index), 1);
    store.addUrls(['http://a.example/2.jpg']);
    store.addImages(['ab'.repeat(32)]);
    assert.equal(optoutVersion(index), 3);
    assert.deepEqual(
      [...store.listUrls(1)].map((r) => r.url),
      ['http://a.example/2.jpg'],
    );
    assert.deepEqual([...store.listUrls()].map((r) => r.url).sort(), [
      'http://a.example/1.jpg',
      'http://a.example/2.jpg',
    ]);
    assert.deepEqual(
      [...store.listImages(2)].map((r) => r.sha256),
      ['ab'.repeat(32)],
    );
    assert.deepEqual([...store.listImages(3)], []);
  } finally {
    index.close();
  }
  const r = await runCli('muse-data', ['optout', 'list', '--since', '1', '--data-root', dataRoot]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['http://a.example/2.jpg', 'ab'.repeat(32)]);
  assert.match(r.stderr, /opt-out list version 3/);
  const bad = await runCli('muse-data', ['optout', 'list', '--since', '-2', '--data-root', dataRoot]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--since must be a list version/);
});

test('URL lookup: every sample fetched from the URL, whatever its spelling, with status and thumbnail', async () => {
  const { dataRoot, f } = await copyRoot();
  const ok = f.rows.filter((r) => r.status === 'ok');
  const index = openIndex(dataRoot);
  new OptoutStore(index).addUrls([ok[1].url.replace('http://sample.invalid/', 'HTTP://SAMPLE.invalid:80/')]);
  index.close();
  await withServer({ dataRoot }, async (app) => {
    const r = await app.inject(`/api/optout/lookup?url=${encodeURIComponent(ok[1].url + '#frag')}`);
    assert.equal(r.statusCode, 200, r.body);
    const b = json(r);
    assert.equal(b.optedOut, true);
    assert.equal(b.storedAs, ok[1].url.replace('http://sample.invalid/', 'HTTP://SAMPLE.invalid:80/'));
    assert.deepEqual(
      b.samples.map((s: any) => [s.dataset, s.key, s.shard, s.status]),
      [['sample', ok[1].key, Number(ok[1].key.slice(0, 5)), 'ok']],
    );
    const t = await app.inject(b.samples[0].thumbnail);
    assert.equal(t.statusCode, 200);
    assert.equal(t.headers['content-type'], 'image/webp');
    const meta = await sharp(t.rawPayload).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 128, 128]);

    const none = json(
      await app.inject(`/api/optout/lookup?url=${encodeURIComponent('http://sample.invalid/img/99999.jpg')}`),
    );
    assert.deepEqual([none.optedOut, none.samples], [false, []]);
    const invalid = await app.inject('/api/optout/lookup?url=not%20a%20url');
    assert.equal(invalid.statusCode, 400);
    assert.match(json(invalid).error, /^url: /);
  });
});

test('upload search frames the upload as the dataset framed its images: a copy of a non-square original is found', async () => {
  const { dataRoot, f } = await copyRoot();
  // The dataset recorded the dHash of its 128 px centre crops; as uploaded, a non-square picture hashes other pixels.
  // A lossless copy (PNG: other bytes, same pixels) framed like the dataset hashes exactly what was recorded.
  let picked: { key: string; copy: Buffer; plain: number } | undefined;
  for (const r of f.rows.filter((x) => x.status === 'ok' && x.phash && x.original_width !== x.original_height)) {
    const copy = await sharp(await originalImage(r.row))
      .png()
      .toBuffer();
    const plain = hammingDistance(await dhash64(copy), r.phash!);
    if (plain > DEFAULT_SEARCH_DISTANCE) {
      picked = { key: r.key, copy, plain };
      break;
    }
  }
  assert.ok(
    picked,
    `some non-square copy is more than ${DEFAULT_SEARCH_DISTANCE} bits off the recorded hash as uploaded`,
  );
  await withServer({ dataRoot, maxUploadBytes: 2_000_000, maxUploadPixels: 4_000_000 }, async (app) => {
    const r = await app.inject({
      method: 'POST',
      url: '/api/optout/search-image',
      headers: { 'content-type': 'image/png' },
      payload: picked!.copy,
    });
    assert.equal(r.statusCode, 200, r.body);
    const b = json(r);
    assert.equal(b.phash, await dhash64(picked!.copy), 'the reported hash is of the upload as it is');
    const hit = b.near.find((s: any) => s.key === picked!.key);
    assert.ok(hit, `${picked!.key} (${picked!.plain} bits off as uploaded) is found: ${r.body.slice(0, 300)}`);
    assert.equal(hit.distance, 0);
  });
});

test('upload search: identical bytes match by sha256, a re-encoded copy by perceptual hash; the guards refuse bad uploads', async () => {
  const { dataRoot, f } = await copyRoot();
  // A square original: a lossy re-encode of these flat pictures moves few dHash bits then (0-8); of a non-square one it
  // can move 20 even framed like the shard (the framing itself is tested with a lossless copy in serve-api.test.ts).
  const row = f.rows.find(
    (r) => r.status === 'ok' && r.url.endsWith('.jpg') && r.original_width === r.original_height,
  )!;
  const original = await originalImage(row.row);
  assert.equal(createHash('sha256').update(original).digest('hex'), row.sha256, 'the fixture serves what fetch hashed');
  // A copy: re-encoded as WebP (other bytes, other codec artefacts, same picture).
  const copy = await sharp(original).webp({ quality: 75 }).toBuffer();
  await withServer({ dataRoot, maxUploadBytes: 200_000, maxUploadPixels: 4_000_000 }, async (app) => {
    const post = (body: Buffer, type = 'image/jpeg', q = '') =>
      app.inject({
        method: 'POST',
        url: `/api/optout/search-image${q}`,
        headers: { 'content-type': type },
        payload: body,
      });
    const exact = json(await post(original));
    assert.equal(exact.sha256, row.sha256);
    assert.deepEqual(
      exact.exact.map((s: any) => s.key),
      [row.key],
    );
    assert.ok(!exact.near.some((s: any) => s.key === row.key), 'an exact match is not listed again as near');

    const near = await post(copy, 'image/webp');
    assert.equal(near.statusCode, 200, near.body);
    const nb = json(near);
    assert.deepEqual(nb.exact, []);
    const hit = nb.near.find((s: any) => s.key === row.key);
    assert.ok(hit, `the re-encoded copy finds ${row.key}: ${near.body.slice(0, 300)}`);
    assert.ok(hit.distance <= 10);
    assert.equal(nb.near[0].distance, Math.min(...nb.near.map((s: any) => s.distance)), 'nearest first');
    // After a dedup run the same search goes through the multi-index hashing tables: same answer.
    const d = await runCli('muse-data', ['dedup', 'sample', '--data-root', dataRoot]);
    assert.equal(d.code, 0, d.stderr);
    const viaBands = json(await post(copy, 'image/webp'));
    assert.deepEqual(
      viaBands.near.map((s: any) => [s.key, s.distance]),
      nb.near.map((s: any) => [s.key, s.distance]),
    );
    // The dedup decisions show on both samples' pages.
    const index = openIndex(dataRoot, { readonly: true });
    const decision = index.db
      .prepare('SELECT key, duplicate_of_key AS of, kind FROM dedup_decisions ORDER BY key LIMIT 1')
      .get() as { key: string; of: string; kind: string } | undefined;
    index.close();
    assert.ok(decision, 'the sample has duplicates');
    const dup = json(await app.inject(`/api/datasets/sample/samples/${decision.key}`));
    assert.deepEqual(
      dup.duplicateOf.map((x: any) => [x.dataset, x.key, x.kind]),
      [['sample', decision.of, decision.kind]],
    );
    const orig = json(await app.inject(`/api/datasets/sample/samples/${decision.of}`));
    assert.ok(orig.duplicates.some((x: any) => x.key === decision.key));

    const tight = json(await post(copy, 'image/webp', '?distance=0'));
    assert.ok(tight.near.every((s: any) => s.distance === 0));

    const notImage = await post(Buffer.from('hello, not an image'), 'image/png');
    assert.equal(notImage.statusCode, 422);
    assert.match(json(notImage).error, /refused: not an image/);
    const big = await sharp({ create: { width: 2100, height: 2000, channels: 3, background: '#888' } })
      .jpeg({ quality: 10 })
      .toBuffer();
    const tooMany = await post(big);
    assert.equal(tooMany.statusCode, 422);
    assert.match(json(tooMany).error, /image area 2100x2000 = 4200000 > max_image_area 4000000/);
    const tooBig = await post(Buffer.alloc(300_000, 1));
    assert.equal(tooBig.statusCode, 413);
    assert.ok(json(tooBig).error);
    const svg = await post(
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'),
      'image/svg+xml',
    );
    assert.equal(svg.statusCode, 422);
    assert.match(json(svg).error, /unsupported image format 'svg'/);
    const empty = await post(Buffer.alloc(0));
    assert.equal(empty.statusCode, 400);
    const badDistance = await post(copy, 'image/webp', '?distance=99');
    assert.equal(badDistance.statusCode, 422);
    assert.match(json(badDistance).error, /distance must be an integer in 0..15/);
  });
});

test('a request goes pending -> accepted (CLI) -> applied in the dataset; the sample leaves the explorer grid', async () => {
  const { dataRoot, f } = await copyRoot();
  const target = f.rows.filter((r) => r.status === 'ok')[2];
  await withServer({ dataRoot }, async (app) => {
    const filed = await app.inject({
      method: 'POST',
      url: '/api/optout/requests',
      payload: { urls: [target.url], contact: 'me@example.org' },
    });
    assert.equal(filed.statusCode, 201, filed.body);
    const req = json(filed);
    assert.equal(req.state, 'pending');
    assert.match(req.page, /^\/optout\/requests\/[0-9a-f]{32}$/);
    const pageHtml = (await app.inject(req.page)).body;
    assert.match(pageHtml, /data-state="pending"/);

    const listed = await runCli('muse-data', [
      'optout',
      'requests',
      'list',
      '--state',
      'pending',
      '--data-root',
      dataRoot,
    ]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(
      listed.stdout,
      new RegExp(
        `^${req.id} pending .* urls=1 sha256s=0 contact=me@example.org\\n  url ${target.url.replaceAll('.', '\\.')}\\n`,
      ),
    );
    const acc = await runCli('muse-data', ['optout', 'requests', 'accept', String(req.id), '--data-root', dataRoot]);
    assert.equal(acc.code, 0, acc.stderr);
    assert.match(acc.stdout, /request \d+: accepted \(opt-out list version 1;/);
    const again = await runCli('muse-data', [
      'optout',
      'requests',
      'accept',
      String(req.id),
      '999',
      '--data-root',
      dataRoot,
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /request \d+: request \d+ is already accepted/);
    assert.match(again.stderr, /request 999: no opt-out request 999/);

    const accepted = json(await app.inject(`/api/optout/requests/${req.token}`));
    assert.deepEqual([accepted.state, accepted.version, accepted.applied], ['accepted', 1, []]);
    // Before apply: the sample is still in the grid and its thumbnail is served.
    const grid = () => app.inject('/api/datasets/sample/samples?status=ok&per=200').then(json);
    assert.ok((await grid()).samples.some((s: any) => s.key === target.key));

    const ap = await runCli('muse-data', ['optout', 'apply', '--data-root', dataRoot]);
    assert.equal(ap.code, 0, ap.stderr);
    await new Promise((r) => setTimeout(r, 1100)); // the explorer re-reads a changed shard at most once a second
    const after = await grid();
    assert.ok(!after.samples.some((s: any) => s.key === target.key), 'gone from the ok grid');
    const one = json(await app.inject(`/api/datasets/sample/samples/${target.key}`));
    assert.deepEqual(
      [one.manifest.status, one.manifest.reason, one.image, one.optout.optedOut],
      ['opted_out', 'optout_index', null, true],
    );
    assert.equal((await app.inject(`/thumbs/sample/${target.key}.webp`)).statusCode, 404);
    const applied = json(await app.inject(`/api/optout/requests/${req.token}`));
    assert.equal(applied.applied.length, 1);
    assert.equal(applied.applied[0].dataset, 'sample');
    assert.match((await app.inject(req.page)).body, /applied in <b>sample<\/b> at \d{4}-/);
    const ds = json(await app.inject('/api/datasets/sample'));
    assert.deepEqual([ds.optout.current, ds.optout.lastApplied.version], [1, 1]);
  });
  const rejected = await runCli('muse-data', ['optout', 'requests', 'reject', 'x1', '--data-root', dataRoot]);
  assert.equal(rejected.code, 1);
  assert.match(rejected.stderr, /not ids: x1/);
});

test('explorer: counts, filters (status, reason, caption search, size, metadata), paging, export, sample page', async () => {
  const { dataRoot, f } = await copyRoot();
  await withServer({ dataRoot }, async (app) => {
    const s = json(await app.inject('/api/datasets/sample'));
    const byStatus: Record<string, number> = {};
    for (const r of f.rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    assert.deepEqual(s.counts, byStatus);
    assert.ok(s.metaColumns.includes('NSFW'));

    const q = (qs: string) => app.inject(`/api/datasets/sample/samples?${qs}`).then(json);
    const keys = (rows: typeof f.rows) => rows.map((r) => r.key).sort();
    assert.deepEqual(
      (await q('status=ok&per=200')).samples.map((x: any) => x.key),
      keys(f.rows.filter((r) => r.status === 'ok')),
    );
    const fb = f.rows.filter((r) => r.status === 'fallback');
    const reason = fb[0].reason!;
    assert.deepEqual(
      (await q(`reason=${reason}`)).samples.map((x: any) => x.key),
      keys(f.rows.filter((r) => r.reason === reason)),
    );
    // Caption search: every word must occur.
    const red = f.rows.filter((r) => r.caption && /\bred\b/.test(r.caption) && /\bcircle\b/.test(r.caption));
    assert.ok(red.length > 0);
    assert.deepEqual(
      (await q('q=red%20circle&per=200')).samples.map((x: any) => x.key),
      keys(red),
    );
    assert.equal((await q('q=%22%20OR%20*')).total, 0, 'FTS operators in the search text are words, not syntax');
    const wide = f.rows.filter((r) => (r.original_width ?? r.width ?? 0) >= 500);
    assert.deepEqual(
      (await q('min_width=500&per=200')).samples.map((x: any) => x.key),
      keys(wide),
    );
    const nsfw = f.rows.filter((r) => r.meta && JSON.parse(r.meta).NSFW === 'UNLIKELY');
    assert.equal((await q('meta.NSFW=UNLIKELY')).total, nsfw.length);
    // Paging: pages partition the view in key order.
    const p1 = await q('per=30&page=1');
    const p4 = await q('per=30&page=4');
    assert.equal(p1.total, f.rows.length);
    assert.deepEqual([p1.samples.length, p4.samples.length], [30, f.rows.length - 90]);
    assert.equal(p1.samples[0].key, keys(f.rows)[0]);
    assert.equal(p4.samples.at(-1).key, keys(f.rows).at(-1));
    // Export of a filtered view.
    const csv = (await app.inject('/datasets/sample/export.csv?status=ok&q=red')).body.trim().split('\n');
    const okRed = f.rows.filter((r) => r.status === 'ok' && r.caption && /\bred\b/.test(r.caption));
    assert.equal(csv[0], 'key,shard,status,reason,width,height,original_width,original_height,url,caption,meta');
    assert.deepEqual(
      csv.slice(1).map((l) => l.split(',')[0]),
      keys(okRed),
    );
    const exp = json(await app.inject('/datasets/sample/export.json?status=fallback'));
    assert.deepEqual(
      (exp as unknown as any[]).map((r) => r.key),
      keys(fb),
    );
    // A sample's page: image from the shard, caption, manifest row and the sample JSON.
    const ok = f.rows.find((r) => r.status === 'ok')!;
    const detail = json(await app.inject(`/api/datasets/sample/samples/${ok.key}`));
    assert.equal(detail.json.key, ok.key);
    assert.equal(detail.json.caption, ok.caption);
    assert.equal(detail.manifest.url, ok.url);
    const img = await app.inject(detail.image);
    assert.equal(img.headers['content-type'], 'image/jpeg');
    assert.equal((await sharp(img.rawPayload).metadata()).width, ok.width);
    const htmlPage = (await app.inject(`/datasets/sample/samples/${ok.key}`)).body;
    assert.ok(htmlPage.includes(`id="caption">${ok.caption}</p>`));
    const grid = (await app.inject('/datasets/sample?status=ok&per=10')).body;
    assert.equal((grid.match(/class="card"/g) ?? []).length, 10);
    assert.match(grid, /<svg class="chart" id="chart-status"/);
  });
});

test('security and limits: bad input gets a 4xx with a message and the server keeps serving', async () => {
  const { dataRoot, f } = await copyRoot();
  await withServer({ dataRoot, searchRateLimit: 5, adminToken: 'sekrit-token' }, async (app) => {
    const err = async (r: Promise<{ statusCode: number; body: string }>, status: number, re: RegExp) => {
      const res = await r;
      assert.equal(res.statusCode, status, res.body);
      assert.match(json(res).error, re);
    };
    const post = (
      url: string,
      payload: string,
      headers: Record<string, string> = { 'content-type': 'application/json' },
    ) => app.inject({ method: 'POST', url, payload, headers });
    await err(post('/api/optout/requests', '{"urls": ["http://a.example/x.jpg"'), 400, /JSON/i);
    await err(
      post('/api/optout/requests', '{"urls": ["http://a.example/x.jpg"], "admin": true}'),
      400,
      /must NOT have additional properties/,
    );
    await err(post('/api/optout/requests', '{"urls": []}'), 400, /at least one image URL or sha256/);
    await err(post('/api/optout/requests', '{"sha256s": ["abc"]}'), 400, /not a sha256/);
    await err(post('/api/optout/requests', '{"urls": ["javascript:alert(1)"]}'), 400, /not a valid image URL/);
    // CSRF: a cross-site form post (simple content type, foreign origin) is refused.
    await err(
      post('/api/optout/requests', 'urls=http://a.example/x.jpg', {
        'content-type': 'application/x-www-form-urlencoded',
      }),
      415,
      /content type/,
    );
    await err(
      post('/api/optout/requests', '{"urls": ["http://a.example/x.jpg"]}', {
        'content-type': 'application/json',
        origin: 'http://evil.example',
      }),
      403,
      /refused/,
    );
    await err(
      post('/api/optout/requests', '{"urls": ["http://a.example/x.jpg"]}', {
        'content-type': 'application/json',
        'sec-fetch-site': 'cross-site',
      }),
      403,
      /cross-site/,
    );
    // Paths: only known dataset names and keys.
    await err(app.inject('/datasets/nope'), 404, /no dataset 'nope'/);
    await err(app.inject('/thumbs/sample/..%2F..%2Findex.sqlite'), 400, /not a sample key/);
    await err(app.inject('/images/..%2Fsample/000000000'), 404, /no dataset/);
    await err(app.inject('/datasets/sample/samples/000009999'), 404, /no sample 000009999/);
    await err(app.inject('/static/..%2Fapp.ts'), 404, /no static file/);
    await err(app.inject('/api/datasets/sample/samples?per=100000'), 400, /per must be an integer in 1..200/);
    await err(app.inject('/api/datasets/sample/samples?sort=evil'), 400, /unknown parameter "sort"/);
    await err(app.inject("/api/datasets/sample/samples?meta.x')--=1"), 400, /letters, digits and _ only/);
    await err(app.inject('/api/optout/requests/0123'), 404, /no opt-out request/);
    await err(app.inject('/no/such/page'), 404, /no such page/);
    // Admin API: token required.
    await err(app.inject('/api/admin/requests'), 401, /admin token/);
    await err(
      app.inject({ url: '/api/admin/requests', headers: { authorization: 'Bearer wrong' } }),
      401,
      /admin token/,
    );
    const list = await app.inject({ url: '/api/admin/requests', headers: { authorization: 'Bearer sekrit-token' } });
    assert.equal(list.statusCode, 200);
    // Rate limit on search: 5 a minute here.
    const url = `/api/optout/lookup?url=${encodeURIComponent(f.rows[0].url)}`;
    let limited = 0;
    for (let i = 0; i < 8; i++) if ((await app.inject(url)).statusCode === 429) limited++;
    assert.ok(limited >= 3, `the search rate limit answered 429 ${limited} times`);
    // Still serving.
    assert.equal((await app.inject('/api/datasets/sample')).statusCode, 200);
  });
  // The admin API with its token: accept / reject requests.
  await withServer({ dataRoot, adminToken: 'sekrit-token' }, async (app) => {
    const err = async (r: Promise<{ statusCode: number; body: string }>, status: number, re: RegExp) => {
      const res = await r;
      assert.equal(res.statusCode, status, res.body);
      assert.match(json(res).error, re);
    };
    const post = (url: string, payload: string) =>
      app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
    const filed = json(
      await post('/api/optout/requests', JSON.stringify({ sha256s: ['cd'.repeat(32)], contact: 'x@example.org' })),
    );
    const admin = { authorization: 'Bearer sekrit-token', 'content-type': 'application/json' };
    await err(
      app.inject({
        method: 'POST',
        url: `/api/admin/requests/${filed.id}/accept`,
        payload: '{}',
        headers: { 'content-type': 'application/json' },
      }),
      401,
      /admin token/,
    );
    const pending = json(
      await app.inject({ url: '/api/admin/requests?state=pending', headers: { authorization: 'Bearer sekrit-token' } }),
    );
    assert.deepEqual(
      pending.requests.map((r: any) => [r.id, r.contact]),
      [[filed.id, 'x@example.org']],
    );
    const accepted = await app.inject({
      method: 'POST',
      url: `/api/admin/requests/${filed.id}/accept`,
      payload: '{}',
      headers: admin,
    });
    assert.equal(accepted.statusCode, 200, accepted.body);
    assert.equal(json(accepted).state, 'accepted');
    const idx = openIndex(dataRoot, { readonly: true });
    assert.equal(new OptoutStore(idx).hasImage('cd'.repeat(32)), true, 'the accepted hash is opted out');
    idx.close();
    await err(
      app.inject({ method: 'POST', url: `/api/admin/requests/${filed.id}/reject`, payload: '{}', headers: admin }),
      409,
      /already accepted/,
    );
    await err(
      app.inject({ method: 'POST', url: `/api/admin/requests/${filed.id}/delete`, payload: '{}', headers: admin }),
      404,
      /unknown action/,
    );
    await err(
      app.inject({ method: 'POST', url: '/api/admin/requests/999/accept', payload: '{}', headers: admin }),
      404,
      /no opt-out request 999/,
    );
    assert.equal(
      json(await app.inject(`/api/optout/requests/${filed.token}`)).contact,
      undefined,
      'the public page does not show the contact',
    );
  });
  await withServer({ dataRoot }, async (app) => {
    await assert.doesNotReject(async () => {
      const r = await app.inject({ url: '/api/admin/requests', headers: { authorization: 'Bearer x' } });
      assert.equal(r.statusCode, 403);
      assert.match(json(r).error, /admin API is disabled/);
    });
    // A real socket: Node's header limit answers a huge query string before any route runs.
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const huge = await fetch(`${address}/api/optout/lookup?url=${'a'.repeat(100_000)}`);
    assert.equal(huge.status, 431);
    const long = await fetch(`${address}/api/optout/lookup?url=${'a'.repeat(5000)}`);
    assert.equal(long.status, 400);
    assert.match(((await long.json()) as { error: string }).error, /must NOT have more than 4096 characters/);
    assert.equal((await fetch(`${address}/datasets`)).status, 200);
  });
});

test('the serve command: listens on 127.0.0.1, answers, stops cleanly on SIGTERM; bad flags are usage errors', async () => {
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'muse-serve-cmd-'));
  let listening: (origin: string) => void = () => {};
  const origin = new Promise<string>((resolve) => (listening = resolve));
  const serving = runCli('muse-data', ['serve', '--data-root', dataRoot, '--port', '0'], {
    onStderr: (text) => {
      const m = /serve: (http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (m) listening(m[1]);
    },
  });
  const url = await Promise.race([
    origin,
    serving.then((r) => Promise.reject(new Error(`exited ${r.code}: ${r.stderr}`))),
  ]);
  const home = await fetch(`${url}/`);
  assert.equal(home.status, 200);
  assert.match(await home.text(), /Find your images and opt out/);
  assert.equal((await fetch(`${url}/play`)).status, 404, 'no playground without --checkpoint');
  serving.kill('SIGTERM');
  assert.equal((await serving).code, 0);
  const three = await runCli('muse-data', [
    'serve',
    '--data-root',
    dataRoot,
    '--checkpoint',
    'a',
    '--checkpoint',
    'b',
    '--checkpoint',
    'c',
  ]);
  assert.equal(three.code, 2);
  assert.match(three.stderr, /compares at most two/);
  const port = await runCli('muse-data', ['serve', '--data-root', dataRoot, '--port', '70000']);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /--port 70000/);
});
