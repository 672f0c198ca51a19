/**
 * The sample index as shard runs + compacted runs (src/dataset/sample-index.ts): what fetch records, look-ups
 * before and after `index compact`, opt-outs added after the fetch, kill -9 during recording and compaction,
 * and the migration of an old index.sqlite's samples table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { openIndex, type IndexDb } from '../../src/index-db/db.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { checkImage, checkUrl } from '../../src/optout/check.ts';
import { applyOptouts } from '../../src/optout/apply.ts';
import { resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { readManifest, type ManifestRow } from '../../src/dataset/manifest.ts';
import { shardPaths } from '../../src/dataset/names.ts';
import {
  compactIndex,
  compactionAdvice,
  readLiveRuns,
  runsManifestPath,
  withSampleIndex,
} from '../../src/dataset/sample-index.ts';
import { connect, runsRelation } from '../../src/index-db/sample-runs.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const SHARDS = 3;
const PER_SHARD = 4;
const ROWS = SHARDS * PER_SHARD;

async function tmp(name: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `muse-sample-index-${name}-`));
}

/** Loopback images: /img/<n>.jpg distinct per n, except /img/404.jpg. */
async function imageServer() {
  const jpg = (n: number) =>
    sharp({ create: { width: 40, height: 30, channels: 3, background: { r: (n * 37) % 256, g: 80, b: 200 - n * 7 } } })
      .jpeg()
      .toBuffer();
  const server = http.createServer((req, res) => {
    const m = /^\/img\/(\d+)\.jpg$/.exec(req.url ?? '');
    if (!m || m[1] === '404') return void res.writeHead(404).end();
    void jpg(Number(m[1])).then((b) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(b));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, jpg, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const urlOf = (origin: string, i: number) => `${origin}/img/${i === 5 ? 404 : i}.jpg`;

function pipeline(dir: string, origin: string) {
  const tsv = path.join(dir, 'in.tsv');
  return {
    tsv,
    write: () => writeFile(tsv, Array.from({ length: ROWS }, (_, i) => `${urlOf(origin, i)}\tcaption ${i}\n`).join('')),
    cfg: resolvePipeline(
      {
        name: 'runs-test',
        input: {
          files: [tsv],
          format: 'tsv',
          header: false,
          columns: ['url', 'caption'],
          url_col: 'url',
          caption_col: 'caption',
        },
        image: { size: 16 },
        download: { allow_private_network: true, timeout_s: 5, retries: 0 },
        samples_per_shard: PER_SHARD,
      },
      'runs-test',
    ),
  };
}

async function fetchInto(dir: string, origin: string, workers: number) {
  await mkdir(dir, { recursive: true });
  const p = pipeline(dir, origin);
  await p.write();
  const out = path.join(dir, 'out');
  const dataRoot = path.join(dir, 'root');
  const summary = await runFetch({
    cfg: p.cfg,
    datasetDir: out,
    dataRoot,
    projectRoot: root,
    workers,
    logFormat: 'json',
  });
  assert.deepEqual(summary.shards_failed, []);
  return { out, dataRoot };
}

async function manifests(out: string): Promise<ManifestRow[]> {
  const rows: ManifestRow[] = [];
  for (let s = 0; s < SHARDS; s++) rows.push(...(await readManifest(shardPaths(out, s).manifest)));
  return rows;
}

/** Every live index row (runs only), as comparable tuples in key order. */
async function indexRows(index: IndexDb): Promise<string[]> {
  return withSampleIndex(index, async (s) => {
    const rel = runsRelation(s.layout.set, 'url');
    if (!rel) return [];
    const con = await connect();
    try {
      const r = await con.runAndReadAll(
        `SELECT dataset_id, key, shard, status, lower(hex(sha256)) AS sha, phash, url_hash FROM (${rel}) ORDER BY dataset_id, key`,
      );
      return r
        .getRowObjectsJS()
        .map((x) => [x.dataset_id, x.key, x.shard, x.status, x.sha || null, x.phash, x.url_hash].join(' '));
    } finally {
      con.closeSync();
    }
  });
}

/** What each look-up answers for every manifest row: by URL, by sha256, opt-out planning. */
async function lookups(index: IndexDb, rows: ManifestRow[]): Promise<string[]> {
  const store = new OptoutStore(index);
  return withSampleIndex(index, async (s) => {
    const out: string[] = [];
    for (const r of rows) {
      const c = await checkUrl(store, r.url, s);
      out.push(
        `url ${r.key}: ${c.optedOut} ${c.samples.map((x) => `${x.dataset}/${x.key}/${x.shard}/${x.status}/${x.sha256}/${x.phash}`).join(',')}`,
      );
      if (r.sha256)
        out.push(
          `sha ${r.key}: ${(await checkImage(store, r.sha256, s)).samples.map((x) => `${x.key}/${x.status}`).join(',')}`,
        );
    }
    for (const d of index.datasets()) out.push(`optout ${d.name}: ${JSON.stringify(await s.optedOutSamples(d.id))}`);
    return out;
  });
}

const expectedRows = (rows: ManifestRow[]) => rows.filter((r) => r.url).map((r) => `${r.key} ${r.status} ${r.sha256}`);
const keyStatusSha = (rows: string[]) =>
  rows.map((r) => r.split(' ')).map(([, key, , status, sha]) => `${key} ${status} ${sha === '' ? null : sha}`);

test("fetch --workers 2 records exactly its manifests' rows as shard runs; opt-outs added later are found by URL and image before and after compaction", async () => {
  const server = await imageServer();
  const dir = await tmp('fetch');
  try {
    const { out, dataRoot } = await fetchInto(dir, server.origin, 2);
    const rows = await manifests(out);
    assert.deepEqual(
      rows.filter((r) => r.status !== 'ok').map((r) => r.key),
      [rows[5].key],
      'the 404 row is recorded too',
    );
    for (let s = 0; s < SHARDS; s++) assert.ok(existsSync(shardPaths(out, s).indexRun), `shard ${s} has its index run`);
    const index = openIndex(dataRoot);
    try {
      assert.equal(
        index.db.prepare('SELECT count(*) FROM samples').pluck().get(),
        0,
        'no process wrote the samples table',
      );
      assert.deepEqual(keyStatusSha(await indexRows(index)), expectedRows(rows));

      // Opted out after the fetch: row 2 by URL (another spelling), row 7 by its image.
      const store = new OptoutStore(index);
      store.addUrls([urlOf(server.origin, 2).replace('http://', 'HTTP://') + '#x']);
      const sha7 = createHash('sha256')
        .update(await server.jpg(7))
        .digest('hex');
      assert.equal(rows[7].sha256, sha7);
      store.addImages([sha7]);
      const before = await lookups(index, rows);
      const d = index.datasets()[0];
      const planned = await withSampleIndex(index, (s) => s.optedOutSamples(d.id));
      assert.deepEqual(planned, [
        { key: rows[2].key, shard: 0, byImage: false },
        { key: rows[7].key, shard: 1, byImage: true },
      ]);
      assert.equal((await checkUrl(store, rows[2].url)).optedOut, true);
      assert.equal((await checkUrl(store, rows[7].url)).byImage, true);

      assert.match(
        (await compactionAdvice(index, SHARDS - 1)) ?? '',
        new RegExp(`${SHARDS} shard runs not compacted yet.*muse-data index compact`),
      );
      assert.equal(await compactionAdvice(index, SHARDS), null, 'no advice at or below the threshold');
      const c = await compactIndex(index);
      assert.equal(await compactionAdvice(index, 0), null, 'nothing left to compact');
      assert.equal(c.shardRunsMerged, SHARDS);
      assert.equal(c.rows, ROWS);
      for (let s = 0; s < SHARDS; s++)
        assert.equal(existsSync(shardPaths(out, s).indexRun), false, 'absorbed shard runs are deleted');
      assert.deepEqual(await lookups(index, rows), before, 'every look-up answers the same after compaction');
      assert.deepEqual(keyStatusSha(await indexRows(index)), expectedRows(rows));

      // apply rewrites shards 0 and 1: their new runs win over the compacted rows, before and after compacting.
      await applyOptouts(index, index.datasets());
      const afterApply = await manifests(out);
      assert.deepEqual([afterApply[2].status, afterApply[7].status], ['opted_out', 'opted_out']);
      assert.deepEqual(keyStatusSha(await indexRows(index)), expectedRows(afterApply));
      assert.deepEqual(await withSampleIndex(index, (s) => s.optedOutSamples(d.id)), []);
      const applied = await lookups(index, afterApply);
      await compactIndex(index);
      assert.deepEqual(await lookups(index, afterApply), applied);
      assert.deepEqual((await readdir(path.dirname(runsManifestPath(dataRoot)))).sort(), [
        'c-2.sha.parquet',
        'c-2.url.parquet',
        'runs.json',
      ]);
    } finally {
      index.close();
    }
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

/** Runs `code` (an ES module body) in a child process with tsx; resolves with its exit signal / code. */
function child(
  code: string,
  cwd: string,
  onOutput?: (text: string, kill: () => void) => void,
): Promise<{ code: number | null; signal: string | null; output: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TMPDIR: cwd },
    });
    let output = '';
    const on = (b: Buffer) => {
      output += b;
      onOutput?.(output, () => c.kill('SIGKILL'));
    };
    c.stdout.on('data', on);
    c.stderr.on('data', on);
    c.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

const src = (p: string) => JSON.stringify(pathToFileURL(path.join(root, 'src', p)).href);

test("kill -9 during recording or compaction, then rerun: the index equals an uninterrupted run's", async () => {
  const server = await imageServer();
  const dir = await tmp('kill');
  try {
    const clean = await fetchInto(path.join(dir, 'clean'), server.origin, 1);
    await mkdir(path.join(dir, 'killed'), { recursive: true });
    const p = pipeline(path.join(dir, 'killed'), server.origin);
    await p.write();
    const out = path.join(dir, 'killed', 'out');
    const dataRoot = path.join(dir, 'killed', 'root');
    const fetchCode = `
      const { runFetch } = await import(${src('pipeline/run-fetch.ts')});
      await runFetch({ cfg: ${JSON.stringify(p.cfg)}, datasetDir: ${JSON.stringify(out)}, dataRoot: ${JSON.stringify(dataRoot)}, projectRoot: ${JSON.stringify(root)}, workers: 1, logFormat: 'json' });`;
    // Killed right after the first shard is recorded and reported (the next one is being fetched or recorded).
    const killed = await child(fetchCode, dir, (text, kill) => /"shard_done"/.test(text) && kill());
    assert.equal(killed.signal, 'SIGKILL', killed.output);
    const rerun = await child(fetchCode, dir);
    assert.equal(rerun.code, 0, rerun.output);

    const cleanIndex = openIndex(clean.dataRoot);
    const index = openIndex(dataRoot);
    try {
      const want = await indexRows(cleanIndex);
      assert.deepEqual(keyStatusSha(want), expectedRows(await manifests(clean.out)));
      assert.deepEqual(await indexRows(index), want, 'recording: killed + rerun equals uninterrupted');
      // Compaction killed after each step, then rerun; each round starts from the shard runs.
      await compactIndex(cleanIndex);
      const wantLookups = await lookups(cleanIndex, await manifests(clean.out));
      const backup = path.join(dir, 'shards-backup');
      await cp(path.join(out, 'shards'), backup, { recursive: true });
      for (const step of ['written', 'swapped'] as const) {
        await rm(path.join(out, 'shards'), { recursive: true });
        await cp(backup, path.join(out, 'shards'), { recursive: true });
        await rm(path.dirname(runsManifestPath(dataRoot)), { recursive: true, force: true });
        const k = await child(
          `const { openIndex } = await import(${src('index-db/db.ts')});
           const { compactIndex } = await import(${src('dataset/sample-index.ts')});
           await compactIndex(openIndex(${JSON.stringify(dataRoot)}), () => {}, (s) => { if (s === ${JSON.stringify(step)}) process.kill(process.pid, 'SIGKILL'); });`,
          dir,
        );
        assert.equal(k.signal, 'SIGKILL', k.output);
        assert.deepEqual(
          await indexRows(index),
          want,
          `killed after '${step}': the index is the old one or the new one`,
        );
        await compactIndex(index);
        assert.deepEqual(await indexRows(index), want, `killed after '${step}' and rerun`);
        assert.deepEqual(await lookups(index, await manifests(out)), wantLookups);
        assert.equal((await readLiveRuns(dataRoot)).runs.length, 1);
        for (let s = 0; s < SHARDS; s++) assert.equal(existsSync(shardPaths(out, s).indexRun), false);
        assert.deepEqual((await readdir(path.dirname(runsManifestPath(dataRoot)))).length, 3, 'no stray files');
      }
    } finally {
      cleanIndex.close();
      index.close();
    }
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('an old index.sqlite (samples table, no runs) answers every look-up, and the same after compact moves its rows', async () => {
  const server = await imageServer();
  const dir = await tmp('migrate');
  try {
    const { out, dataRoot } = await fetchInto(dir, server.origin, 1);
    const rows = await manifests(out);
    const index = openIndex(dataRoot);
    try {
      const store = new OptoutStore(index);
      store.addUrls([rows[1].url]);
      store.addImages([rows[10].sha256!]);
      const want = await lookups(index, rows);
      // The old layout: what fetch used to insert, and no runs.
      const id = index.datasets()[0].id;
      for (let s = 0; s < SHARDS; s++) {
        index.recordSamples(
          id,
          rows.slice(s * PER_SHARD, (s + 1) * PER_SHARD).map((r) => ({ ...r, shard: s })),
        );
        await rm(shardPaths(out, s).indexRun);
      }
      assert.deepEqual(await indexRows(index), []);
      assert.deepEqual(await lookups(index, rows), want, 'the old samples table answers as the runs did');
      // A shard in neither (finished by queue workers whose parent never recorded it): rebuilt from its manifest.
      index.db.prepare("DELETE FROM samples WHERE key LIKE '00002%'").run();
      const c = await compactIndex(index);
      assert.equal(c.legacyShardsMoved, SHARDS - 1);
      assert.equal(c.shardRunsMerged, 1);
      assert.equal(c.rows, ROWS);
      assert.deepEqual(
        keyStatusSha(await indexRows(index)),
        expectedRows(rows),
        'every old row is in the compacted run',
      );
      assert.deepEqual(await lookups(index, rows), want, 'and answers every look-up as before');
      // A second compaction does not move them twice.
      assert.equal((await compactIndex(index)).legacyShardsMoved, 0);
      assert.deepEqual(await lookups(index, rows), want);
    } finally {
      index.close();
    }
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
