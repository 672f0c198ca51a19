/**
 * The whole fetch: metadata -> shards, on the bundled sample (served by its local server) and on small inputs
 * written here. Checks statuses, WebDataset layout, skip vs fallback, workers, resume after kill -9, bad files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, writeFile, mkdir, copyFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch, type FetchOptions } from '../../src/pipeline/run-fetch.ts';
import type { PipelineConfig } from '../../src/pipeline/config-types.ts';
import { readTarSamples, type TarSample } from '../../src/shards/tar-reader.ts';
import { readManifest, type ManifestRow } from '../../src/dataset/manifest.ts';
import { readStats } from '../../src/dataset/stats.ts';
import { sampleCatalog } from '../../src/sample-data/catalog.ts';
import { runCli } from '../helpers/cli.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = (p: string) => mkdtemp(path.join(os.tmpdir(), `muse-${p}-`));

async function samplePipeline(over: Record<string, unknown> = {}): Promise<PipelineConfig> {
  const file = path.join(root, 'pipelines', 'sample.yaml');
  return resolvePipeline(deepMerge(await loadPipelineFile(file), over), file);
}

async function fetchTo(cfg: PipelineConfig, out: string, extra: Partial<FetchOptions> = {}) {
  return runFetch({
    cfg,
    datasetDir: out,
    dataRoot: path.join(out, 'root'),
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
    ...extra,
  });
}

async function shardFiles(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const f of (await readdir(path.join(dir, 'shards'))).sort()) {
    if (f.endsWith('.tar') || f.endsWith('.arrow')) files.set(f, await readFile(path.join(dir, 'shards', f)));
  }
  return files;
}

const catalog = sampleCatalog();
let reference: string; // the sample fetched once, uninterrupted, 50 rows per shard

test('the bundled sample: every row ends in the expected status, with fallbacks for dead links', async () => {
  reference = await tmp('ref');
  const summary = await fetchTo(await samplePipeline({ samples_per_shard: 50 }), reference);
  assert.equal(summary.rows, catalog.length);
  assert.equal(summary.shards_total, 6);
  assert.deepEqual(summary.shards_failed, []);

  const rows: ManifestRow[] = [];
  for (let i = 0; i < 6; i++) rows.push(...(await readManifest(path.join(reference, 'shards', `0000${i}.arrow`))));
  assert.equal(rows.length, catalog.length);
  for (const item of catalog) {
    const r = rows[item.row];
    assert.equal(r.row, item.row);
    assert.equal(
      r.key,
      `${String(Math.floor(item.row / 50)).padStart(5, '0')}${String(item.row % 50).padStart(4, '0')}`,
    );
    // With --dead-links fallback (the default), rows that could not be fetched or decoded become fallbacks.
    const expected = item.expected === 'failed' ? 'fallback' : item.expected;
    assert.equal(r.status, expected, `row ${item.row} (${item.kind}): ${r.status} ${r.reason} ${r.error}`);
    if (r.status !== 'ok') assert.ok(r.reason, `row ${item.row} has a reason`);
  }
  const byKind = (kind: string) => rows[catalog.find((c) => c.kind === kind)!.row];
  assert.equal(byKind('noai_header').reason, 'x_robots_tag');
  assert.equal(byKind('decompression_bomb').reason, 'max_image_area');
  assert.equal(byKind('corrupt_similarity').reason, 'clip_similarity');
  assert.equal(byKind('nsfw_tag').reason, 'nsfw_tag');
  assert.equal(byKind('short_caption').reason, 'min_chars');
  assert.equal(byKind('dead_404').reason, 'http_404');

  // The tar holds exactly the ok + fallback rows, in key order, as WebDataset samples.
  const keys: string[] = [];
  for (let i = 0; i < 6; i++) {
    for await (const s of readTarSamples(path.join(reference, 'shards', `0000${i}.tar`))) {
      keys.push(s.key);
      assert.deepEqual(Object.keys(s.files), ['jpg', 'json', 'txt']);
      const json = JSON.parse(s.files.json.toString());
      const meta = await sharp(s.files.jpg).metadata();
      assert.deepEqual([meta.width, meta.height], [128, 128]);
      assert.equal(json.key, s.key);
      assert.equal(s.files.txt.toString(), json.caption);
      if (json.status === 'ok') {
        assert.match(json.sha256, /^[0-9a-f]{64}$/);
        assert.match(json.phash, /^[0-9a-f]{16}$/);
        assert.equal(json.source.SAMPLE_ID, catalog[rows.findIndex((r) => r.key === s.key)].sampleId);
      } else {
        assert.equal(json.status, 'fallback');
        assert.ok(json.error);
      }
    }
  }
  assert.deepEqual(
    keys,
    rows.filter((r) => r.status === 'ok' || r.status === 'fallback').map((r) => r.key),
  );
  const stats = await readStats(path.join(reference, 'shards', '00000_stats.json'));
  assert.equal(stats!.count, 50);
  assert.equal(stats!.status.ok + stats!.status.fallback, stats!.written);
});

test('a rerun skips complete shards; a changed pipeline is refused for the same folder', async () => {
  const before = await shardFiles(reference);
  const summary = await fetchTo(await samplePipeline({ samples_per_shard: 50 }), reference);
  assert.equal(summary.shards_skipped, 6);
  assert.equal(summary.shards_run, 0);
  assert.deepEqual(await shardFiles(reference), before);
  await assert.rejects(
    fetchTo(await samplePipeline({ samples_per_shard: 60 }), reference),
    /different pipeline configuration/,
  );
});

test('--dead-links skip: nothing in the tar for dead rows, the manifest still has them as failed', async () => {
  const out = await tmp('skip');
  await fetchTo(await samplePipeline({ samples_per_shard: 50, dead_links: 'skip' }), out, { shards: '0' });
  assert.deepEqual((await readdir(path.join(out, 'shards'))).sort(), [
    '00000.arrow',
    '00000.index.parquet',
    '00000.tar',
    '00000_stats.json',
  ]);
  const rows = await readManifest(path.join(out, 'shards', '00000.arrow'));
  const dead = catalog.find((c) => c.kind === 'dead_404' && c.row < 50)!;
  assert.equal(rows[dead.row].status, 'failed');
  const keys: string[] = [];
  for await (const s of readTarSamples(path.join(out, 'shards', '00000.tar'))) keys.push(s.key);
  assert.ok(!keys.includes(rows[dead.row].key));
  assert.equal(keys.length, rows.filter((r) => r.status === 'ok').length);
});

test('two worker processes give byte-identical shards', async () => {
  const out = await tmp('workers');
  const summary = await fetchTo(await samplePipeline({ samples_per_shard: 50 }), out, { workers: 2 });
  assert.deepEqual(summary.shards_failed, []);
  assert.deepEqual(await shardFiles(out), await shardFiles(reference));
});

/** `muse-data` with these args: `done` fails on an exit code other than 0 (a kill is not a failure). */
function fetchCli(args: string[]): { done: Promise<number | null>; kill(): void } {
  const run = runCli('muse-data', args);
  return {
    done: run.then(({ code, stderr }) => {
      if (code !== 0 && code !== null) throw new Error(`muse-data exited ${code}: ${stderr}`);
      return code;
    }),
    kill: () => run.kill(),
  };
}

test('kill -9 at random points, then a rerun: shards byte-identical to an uninterrupted run', async () => {
  const out = await tmp('kill');
  // Its own data root: the index a fetch fills must not be the project's ./datasets one.
  const args = [
    'fetch',
    'sample',
    '--samples-per-shard',
    '50',
    '--out',
    out,
    '--data-root',
    path.join(out, 'root'),
    '--log-format',
    'plain',
    '--workers',
    '2',
  ];
  const delays = Array.from({ length: 3 }, () => 800 + Math.floor(Math.random() * 2500));
  for (const delay of delays) {
    const run = fetchCli(args);
    const timer = setTimeout(run.kill, delay);
    await run.done.catch(() => null);
    clearTimeout(timer);
  }
  const partial = existsSync(path.join(out, 'shards')) ? await readdir(path.join(out, 'shards')) : [];
  await fetchCli(args).done;
  const files = await shardFiles(out);
  assert.deepEqual(
    files,
    await shardFiles(reference),
    `kills after ${delays.join(', ')} ms (left ${partial.length} files)`,
  );
  assert.deepEqual(
    (await readdir(path.join(out, 'shards'))).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary files left',
  );
  for (let i = 0; i < 6; i++) {
    const a = await readStats(path.join(out, 'shards', `0000${i}_stats.json`));
    const b = await readStats(path.join(reference, 'shards', `0000${i}_stats.json`));
    assert.deepEqual(a!.status, b!.status);
  }
});

/** A loopback server for inputs written by the tests: /img/<n>.jpg is a 300x200 JPEG, /missing 404. */
async function imageServer(): Promise<{ origin: string; hits: () => number; close: () => Promise<void> }> {
  const jpg = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .jpeg()
    .toBuffer();
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    if (req.url?.startsWith('/img/')) res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpg);
    else res.writeHead(404).end('no');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function flagsPipeline(files: string[], over: Record<string, unknown>): PipelineConfig {
  return resolvePipeline(
    deepMerge(
      {
        input: {
          files,
          format: 'tsv',
          header: false,
          columns: ['url', 'caption'],
          url_col: 'url',
          caption_col: 'caption',
        },
        image: { size: 32 },
        download: { allow_private_network: true, timeout_s: 2, retries: 0 },
        samples_per_shard: 4,
      },
      over,
    ),
    'test',
  );
}

test('bad rows become failed manifest rows and keep their keys; filtered rows are never downloaded', async () => {
  const server = await imageServer();
  try {
    const dir = await tmp('badrows');
    const tsv = path.join(dir, 'cc12m.tsv');
    const lines = [
      Buffer.from(`${server.origin}/img/0.jpg\ta red square on a white background\n`),
      Buffer.from(`${server.origin}/img/1.jpg\ttoo\tmany\tcolumns\n`),
      Buffer.concat([
        Buffer.from(`${server.origin}/img/2.jpg\tbad utf8 `),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('\n'),
      ]),
      Buffer.from(`\tan empty url\n`),
      Buffer.from(`${server.origin}/img/4.jpg\tx\n`),
      Buffer.from(`${server.origin}/img/5.jpg\ta fine caption here\n`),
    ];
    await writeFile(tsv, Buffer.concat(lines));
    const cfg = flagsPipeline([tsv], { filters: { caption: { min_chars: 3 } } });
    const summary = await fetchTo(cfg, path.join(dir, 'out'));
    assert.equal(summary.rows, 6);
    const rows = [
      ...(await readManifest(path.join(dir, 'out', 'shards', '00000.arrow'))),
      ...(await readManifest(path.join(dir, 'out', 'shards', '00001.arrow'))),
    ];
    assert.deepEqual(
      rows.map((r) => r.status),
      ['ok', 'failed', 'failed', 'failed', 'filtered', 'ok'],
    );
    assert.deepEqual(
      rows.map((r) => r.key),
      ['000000000', '000000001', '000000002', '000000003', '000010000', '000010001'],
    );
    assert.match(rows[1].error!, /cc12m\.tsv.*(line|row) 2.*column/i);
    assert.match(rows[2].error!, /UTF-8/i);
    assert.match(rows[3].error!, /url/i);
    assert.equal(rows[4].reason, 'min_chars');
    assert.equal(server.hits(), 2, 'only the two good rows were requested');
  } finally {
    await server.close();
  }
});

test('a bad input file stops the run before any shard is written', async () => {
  const dir = await tmp('badfile');
  const good = path.join(root, 'datasets', 'sample', 'sample.parquet');
  const bytes = await readFile(good);
  const truncated = path.join(dir, 'part-00001.parquet');
  await copyFile(good, path.join(dir, 'part-00000.parquet'));
  await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const cfg = resolvePipeline(
    {
      input: { files: [path.join(dir, '*.parquet')], format: 'parquet', url_col: 'URL', caption_col: 'TEXT' },
      download: { allow_private_network: true },
    },
    'test',
  );
  await assert.rejects(fetchTo(cfg, path.join(dir, 'out')), /part-00001\.parquet/);
  assert.equal(existsSync(path.join(dir, 'out', 'shards')), false);
  const misspelled = resolvePipeline(
    {
      input: { files: [path.join(dir, 'part-00000.parquet')], format: 'parquet', url_col: 'URL', caption_col: 'TXET' },
    },
    'test',
  );
  await assert.rejects(fetchTo(misspelled, path.join(dir, 'out2')), /TXET.*TEXT|TEXT.*TXET/s);
});

test('an ImageNet folder: images read from disk, class index written as .cls', async () => {
  const dir = await tmp('imagenet');
  const wnids = ['n02000000', 'n01000000'];
  for (const [i, wnid] of wnids.entries()) {
    await mkdir(path.join(dir, 'train', wnid), { recursive: true });
    for (let j = 0; j < 2; j++) {
      const img = await sharp({
        create: { width: 80, height: 60, channels: 3, background: { r: 100 * i, g: 50, b: 20 * j } },
      })
        .jpeg()
        .toBuffer();
      await writeFile(path.join(dir, 'train', wnid, `${wnid}_${j}.JPEG`), img);
    }
  }
  const cfg = resolvePipeline(
    { input: { files: [dir], format: 'imagenet' }, image: { size: 32 }, samples_per_shard: 10 },
    'test',
  );
  const out = path.join(dir, 'out');
  const summary = await fetchTo(cfg, out);
  assert.equal(summary.status.ok, 4);
  const samples: TarSample[] = [];
  for await (const s of readTarSamples(path.join(out, 'shards', '00000.tar'))) samples.push(s);
  assert.deepEqual(
    samples.map((s) => Object.keys(s.files)),
    Array(4).fill(['cls', 'jpg', 'json', 'txt']),
  );
  // sorted wnids: n01000000 -> 0, n02000000 -> 1
  assert.deepEqual(
    samples.map((s) => s.files.cls.toString()),
    ['0', '0', '1', '1'],
  );
});
