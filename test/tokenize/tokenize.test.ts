/**
 * `muse-data tokenize` / `verify` on one small shard of the bundled sample: tokens and text states equal the
 * models' own outputs, the files follow the cache format, reruns skip, other weights are refused, exclusions
 * hold, verify finds deleted / truncated / stale files, opt-out apply keeps caches consistent. On six small shards:
 * `kill -9` at a random moment + rerun, and `--workers 2`, both give caches byte-identical to an uninterrupted run.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { readManifest } from '../../src/dataset/manifest.ts';
import { readTarSamples } from '../../src/shards/tar-reader.ts';
import { rewriteShard } from '../../src/dataset/rewrite.ts';
import { writeDuplicatesFile } from '../../src/dataset/decisions-file.ts';
import { OPTOUT_URL } from '../../src/optout/apply.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { openIndex } from '../../src/index-db/db.ts';
import { initBackend, tf } from '../../src/runtime/backend.ts';
import { decodeFloat16 } from '../../src/runtime/float16.ts';
import { VQGAN } from '../../src/models/vqgan/index.ts';
import { byt5Tiny } from '../../src/models/text/index.ts';
import { BUILTIN_VQ_CONFIG, BUILTIN_VQ_ID } from '../../src/models/registry.ts';
import { decodeImage, runTokenize, type TokenizeOptions } from '../../src/tokenize/run-tokenize.ts';
import { readCacheManifest, readTextRow, readTokenTable, type CacheManifest } from '../../src/dataset/cache-format.ts';
import { verifyCaches } from '../../src/tokenize/verify.ts';
import { runCli } from '../helpers/cli.ts';

/** Runs bin/muse-data.js (its own process: the test runner's stdout is left alone). */
const cli = (...argv: string[]) => runCli('muse-data', argv);

const root = path.resolve(import.meta.dirname, '../..');
const TEXT_ID = 'byt5-tiny-local-seed0';
const quiet = () => {};
let dataset: string;
let okKeys: string[];
let fallbackKey: string;
let duplicateKey: string;
let optedOutKey: string;
const dataRoot = () => path.join(dataset, 'root');

const tokensDir = () => path.join(dataset, 'tokens', BUILTIN_VQ_ID);
const textDir = () => path.join(dataset, 'text', TEXT_ID);
const table = async (file: string): Promise<Table> => tableFromIPC(await readFile(file));
const tokenize = (over: Partial<TokenizeOptions> = {}) =>
  runTokenize({
    datasetDir: dataset,
    text: ['byt5-tiny'],
    batch: 8,
    includeFallbacks: false,
    dataRoot: dataRoot(),
    log: quiet,
    ...over,
  });

before(async () => {
  await initBackend('wasm', { quiet: true });
  dataset = await mkdtemp(path.join(os.tmpdir(), 'muse-tokenize-'));
  const file = path.join(root, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 20 }), file);
  await runFetch({
    cfg,
    datasetDir: dataset,
    dataRoot: dataRoot(),
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
    shards: '0',
  });
  const rows = await readManifest(path.join(dataset, 'shards', '00000.arrow'));
  const fallback = rows.find((r) => r.status === 'fallback');
  assert.ok(fallback, 'shard 0 of the sample has a fallback row');
  fallbackKey = fallback.key;
  // a dedup decision not applied: the loader and tokenize skip it
  duplicateKey = rows.filter((r) => r.status === 'ok')[3].key;
  await writeDuplicatesFile(
    dataset,
    [{ key: duplicateKey, duplicate_of: rows[0].key, duplicate_of_dataset: 'x', kind: 'sha256', distance: null }],
    'test',
  );
  // an opt-out registered in the index but not applied to the shard yet
  const opted = rows.filter((r) => r.status === 'ok')[5];
  optedOutKey = opted.key;
  const index = openIndex(dataRoot());
  new OptoutStore(index).addUrls([opted.url]);
  index.close();
  okKeys = rows.filter((r) => r.status === 'ok' && r.key !== duplicateKey && r.key !== optedOutKey).map((r) => r.key);
});

test('tokens: schema, excluded samples absent, ids equal the VQGAN encode of the decoded images', async () => {
  const summary = await tokenize();
  assert.deepEqual(summary.shards_done, [0]);
  const t = await table(path.join(tokensDir(), '00000.arrow'));
  assert.deepEqual(
    t.schema.fields.map((f) => f.name),
    ['key', 'tokens'],
  );
  // (types compared by name: tsx may load apache-arrow's ESM and CJS builds side by side, defeating instanceof)
  assert.deepEqual(
    t.schema.fields.map((f) => String(f.type)),
    ['Utf8', 'FixedSizeList[64]<Uint16>'],
  );
  assert.deepEqual(Object.fromEntries(t.schema.metadata), {
    grid_h: '8',
    grid_w: '8',
    codebook_size: '256',
    vq_id: BUILTIN_VQ_ID,
  });

  const got = readTokenTable(t);
  assert.deepEqual(got.keys, okKeys);
  for (const k of [fallbackKey, duplicateKey, optedOutKey]) assert.ok(!got.keys.includes(k), k);

  const images: Float32Array[] = [];
  for await (const s of readTarSamples(path.join(dataset, 'shards', '00000.tar'))) {
    if (okKeys.includes(s.key)) images.push(await decodeImage(s.files.jpg ?? s.files.png ?? s.files.webp, 64));
  }
  const vq = VQGAN.create(BUILTIN_VQ_CONFIG, 0);
  const pixels = tf.tensor4d(Float32Array.from(images.flatMap((x) => [...x])), [images.length, 64, 64, 3]);
  const ids = vq.encode(pixels);
  assert.deepEqual([...got.tokens], [...(ids.dataSync() as Int32Array)]);
  tf.dispose([pixels, ids]);
  vq.dispose();

  const m = (await readCacheManifest(tokensDir())) as CacheManifest;
  assert.equal(m.kind, 'vq');
  assert.equal(m.id, BUILTIN_VQ_ID);
  assert.match(m.weights_sha256, /^[0-9a-f]{64}$/);
  assert.equal(m.shards['00000'].samples, okKeys.length);
});

test('text: schema, ids and float16 hidden states equal the encoder output; empty-caption row', async () => {
  const file = path.join(textDir(), '00000.arrow');
  const t = await table(file);
  // no pooled column: the T5-style encoder has no pooled output
  assert.deepEqual(
    t.schema.fields.map((f) => `${f.name}:${f.type}`),
    ['key:Utf8', 'ids:List<Int32>', 'length:Int32', 'hidden:List<FixedSizeList[256]<Float16>>'],
  );
  assert.deepEqual(Object.fromEntries(t.schema.metadata), { dim: '256', encoder_id: TEXT_ID, pooled_dim: '0' });

  const rows = await readManifest(path.join(dataset, 'shards', '00000.arrow'));
  const captions = okKeys.map((k) => rows.find((r) => r.key === k)!.caption ?? '');
  const enc = byt5Tiny();
  const out = enc.encode(captions.slice(0, 5));
  const [, L, D] = out.hidden.shape;
  const h = out.hidden.dataSync() as Float32Array;
  for (let i = 0; i < 5; i++) {
    const r = readTextRow(t, i);
    assert.equal(r.key, okKeys[i]);
    assert.deepEqual([...r.ids], [...out.ids[i]]);
    assert.equal(r.length, out.lengths[i]);
    const got = decodeFloat16(r.hidden);
    const want = h.subarray(i * L * D, (i * L + out.lengths[i]) * D);
    assert.equal(got.length, want.length);
    for (let j = 0; j < want.length; j++)
      assert.ok(
        Math.abs(got[j] - want[j]) <= 1e-3 + 1e-3 * Math.abs(want[j]),
        `row ${i} value ${j}: ${got[j]} vs ${want[j]}`,
      );
  }
  const empty = await table(path.join(textDir(), 'empty.arrow'));
  assert.equal(empty.numRows, 1);
  const e = readTextRow(empty, 0);
  assert.equal(e.key, '');
  const eOut = enc.encode(['']);
  assert.deepEqual([...e.ids], [...eOut.ids[0]]);
  tf.dispose([out.hidden, eOut.hidden]);
  enc.dispose();
});

test('rerun skips done shards; a shard not in the manifest (killed before it) is redone', async () => {
  const file = path.join(tokensDir(), '00000.arrow');
  const before = (await stat(file)).mtimeMs;
  const again = await tokenize();
  assert.deepEqual(again.shards_skipped, [0]);
  assert.deepEqual(again.shards_done, []);
  assert.equal((await stat(file)).mtimeMs, before);

  const mfile = path.join(tokensDir(), 'manifest.json');
  const m = JSON.parse(await readFile(mfile, 'utf8')) as CacheManifest;
  const entry = m.shards['00000'];
  delete (m.shards as Record<string, unknown>)['00000'];
  await writeFile(mfile, JSON.stringify(m));
  await writeFile(file + '.tmp', 'partial'); // what a kill -9 inside a write leaves
  const redo = await tokenize();
  assert.deepEqual(redo.shards_done, [0]);
  const after = (await readCacheManifest(tokensDir()))!;
  assert.deepEqual(after.shards['00000'], entry, 'same content as the first run');

  const viaCli = await cli('tokenize', dataset, '--shards', '0-3', '--backend', 'wasm', '--data-root', dataRoot());
  assert.equal(viaCli.code, 0, viaCli.stderr);
  assert.match(viaCli.stdout, /0 shard\(s\) tokenized .* 1 already done/);
  const badRange = await cli('tokenize', dataset, '--shards', '3-1', '--data-root', dataRoot());
  assert.equal(badRange.code, 1);
  assert.match(badRange.stderr, /--shards: 3-1 is empty/);
});

test('tokenizing with different weights into an existing cache is refused, naming both hashes', async () => {
  const mfile = path.join(tokensDir(), 'manifest.json');
  const saved = await readFile(mfile, 'utf8');
  const m = JSON.parse(saved) as CacheManifest;
  const other = 'ab'.repeat(32);
  await writeFile(mfile, JSON.stringify({ ...m, weights_sha256: other }));
  try {
    await assert.rejects(
      tokenize(),
      (err: Error) =>
        err.message.includes(other) && err.message.includes(m.weights_sha256) && /refusing/.test(err.message),
    );
  } finally {
    await writeFile(mfile, saved);
  }
  // a cache made without fallbacks is not extended with them either
  await assert.rejects(tokenize({ includeFallbacks: true }), /without --include-fallbacks/);
});

test('a VQGAN folder (--vq DIR) gets a cache named by its weights hash', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-vq-'));
  const vq = VQGAN.create(BUILTIN_VQ_CONFIG, 1);
  await vq.save(dir);
  vq.dispose();
  const s = await tokenize({ vq: dir });
  assert.match(s.vq_id, /^vq-[0-9a-f]{12}$/);
  const m = (await readCacheManifest(path.join(dataset, 'tokens', s.vq_id)))!;
  assert.equal(m.weights_sha256.slice(0, 12), s.vq_id.slice(3));
  const a = readTokenTable(await table(path.join(dataset, 'tokens', s.vq_id, '00000.arrow')));
  const b = readTokenTable(await table(path.join(tokensDir(), '00000.arrow')));
  assert.deepEqual(a.keys, b.keys);
  assert.notDeepEqual([...a.tokens], [...b.tokens], 'other weights, other tokens');
  await rm(path.join(dataset, 'tokens', s.vq_id), { recursive: true });
});

test('verify: passes on a good cache; optout apply keeps it consistent; finds deleted, truncated and stale files', async () => {
  const good = await cli('verify', dataset, '--data-root', dataRoot());
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /all caches match/);
  assert.deepEqual((await verifyCaches(dataset, dataRoot())).problems, []);

  // opt-out apply rewrites the shard and its caches: still consistent, one row fewer
  await rewriteShard(dataset, 0, new Map([[okKeys[0], OPTOUT_URL]]), { log: quiet });
  assert.deepEqual((await verifyCaches(dataset, dataRoot())).problems, []);
  assert.equal((await readCacheManifest(tokensDir()))!.shards['00000'].samples, okKeys.length - 1);

  // a stale cache: the shard lost a sample the cache still has
  const saved = await readFile(path.join(textDir(), '00000.arrow'));
  const tokensSaved = await readFile(path.join(tokensDir(), '00000.arrow'));
  await rewriteShard(dataset, 0, new Map([[okKeys[1], OPTOUT_URL]]), { log: quiet });
  await writeFile(path.join(tokensDir(), '00000.arrow'), tokensSaved);
  let problems = (await verifyCaches(dataset, dataRoot())).problems;
  assert.deepEqual(problems.map((p) => [p.cache, p.kind]).sort(), [
    ['tokens/' + BUILTIN_VQ_ID, 'count'],
    ['tokens/' + BUILTIN_VQ_ID, 'hash'],
    ['tokens/' + BUILTIN_VQ_ID, 'keys'],
  ]);

  await rm(path.join(tokensDir(), '00000.arrow'));
  await writeFile(path.join(textDir(), '00000.arrow'), saved);
  await truncate(path.join(textDir(), '00000.arrow'), 1000);
  problems = (await verifyCaches(dataset, dataRoot())).problems;
  assert.deepEqual(problems.map((p) => `${p.cache}/${p.file} ${p.kind}`).sort(), [
    `text/${TEXT_ID}/00000.arrow unreadable`,
    `tokens/${BUILTIN_VQ_ID}/00000.arrow missing`,
  ]);
  const bad = await cli('verify', dataset, '--data-root', dataRoot());
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /MISSING tokens\/vqgan-tiny-seed0\/00000\.arrow/);
  assert.match(bad.stdout, /UNREADABLE text\/byt5-tiny-local-seed0\/00000\.arrow/);
});

test('verify names a zero-length cache file and empty.arrow; a rerun of tokenize repairs them and the truncated one', async () => {
  // The verify test above left the text file truncated and the tokens file deleted.
  await truncate(path.join(textDir(), '00000.arrow'), 0);
  await truncate(path.join(textDir(), 'empty.arrow'), 0);
  const found = (await verifyCaches(dataset, dataRoot())).problems
    .map((p) => `${p.cache}/${p.file} ${p.kind}: ${p.detail}`)
    .sort();
  assert.equal(found.length, 3, found.join('\n'));
  assert.match(found[0], /^text\/byt5-tiny-local-seed0\/00000\.arrow unreadable: 0 bytes .*rerun muse-data tokenize/);
  assert.match(found[1], /^text\/byt5-tiny-local-seed0\/empty\.arrow unreadable: 0 bytes/);
  assert.match(found[2], /^tokens\/.*\/00000\.arrow missing/);
  const repaired = await tokenize();
  assert.deepEqual(repaired.shards_done, [0]);
  assert.deepEqual((await verifyCaches(dataset, dataRoot())).problems, []);
  // and a file cut short is redone the same way
  await truncate(path.join(tokensDir(), '00000.arrow'), 1000);
  assert.deepEqual((await tokenize()).shards_done, [0]);
  assert.deepEqual((await verifyCaches(dataset, dataRoot())).problems, []);
});

/** A fresh dataset of `shards` small shards of the bundled sample (its own data root, no exclusions). */
async function smallShards(prefix: string, shards: number, perShard: number): Promise<{ dir: string; root: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const file = path.join(root, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: perShard }), file);
  await runFetch({
    cfg,
    datasetDir: dir,
    dataRoot: path.join(dir, 'root'),
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
    shards: `0-${shards - 1}`,
  });
  return { dir, root: path.join(dir, 'root') };
}

/** Every cache .arrow file under tokens/ and text/ (relative path -> bytes), and the manifests' shard entries. */
async function cacheContents(dir: string): Promise<{ files: Map<string, Buffer>; shards: Record<string, unknown> }> {
  const files = new Map<string, Buffer>();
  const shards: Record<string, unknown> = {};
  for (const kind of ['tokens', 'text']) {
    for (const id of await readdir(path.join(dir, kind))) {
      for (const f of (await readdir(path.join(dir, kind, id))).sort()) {
        const rel = `${kind}/${id}/${f}`;
        if (f.endsWith('.arrow')) files.set(rel, await readFile(path.join(dir, kind, id, f)));
        else if (f === 'manifest.json')
          shards[rel] = (JSON.parse(await readFile(path.join(dir, kind, id, f), 'utf8')) as CacheManifest).shards;
        else assert.fail(`unexpected file left in the cache: ${rel}`);
      }
    }
  }
  return { files, shards };
}

function assertSameCaches(
  a: Awaited<ReturnType<typeof cacheContents>>,
  b: Awaited<ReturnType<typeof cacheContents>>,
  what: string,
) {
  assert.deepEqual([...a.files.keys()], [...b.files.keys()], `${what}: same files`);
  for (const [rel, bytes] of a.files) assert.ok(bytes.equals(b.files.get(rel)!), `${what}: ${rel} byte-identical`);
  assert.deepEqual(a.shards, b.shards, `${what}: same manifest entries`);
}

/** Several small shards and their caches from an uninterrupted in-process run (`--workers 1`), shared by the tests below. */
const SHARDS = 6;
let reference:
  Promise<{ shardsDir: string; caches: Awaited<ReturnType<typeof cacheContents>>; ms: number }> | undefined;
function referenceRun() {
  reference ??= (async () => {
    const { dir } = await smallShards('muse-tokenize-ref-', SHARDS, 8);
    const t0 = performance.now();
    const want = await runTokenize({
      datasetDir: dir,
      text: ['byt5-tiny'],
      batch: 4,
      includeFallbacks: false,
      log: quiet,
    });
    assert.equal(want.shards_done.length, SHARDS);
    return { shardsDir: path.join(dir, 'shards'), caches: await cacheContents(dir), ms: performance.now() - t0 };
  })();
  return reference;
}

/** A new dataset folder holding a copy of the reference's shards (no caches). */
async function copyOfShards(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  await cp((await referenceRun()).shardsDir, path.join(dir, 'shards'), { recursive: true });
  return dir;
}

test('kill -9 during `muse-data tokenize`, then a rerun: caches byte-identical to an uninterrupted run, verify passes', async () => {
  const ref = await referenceRun();
  const dir = await copyOfShards('muse-tokenize-kill-');
  const killRoot = path.join(dir, 'root');
  // the kill lands at a random point of the work: a random fraction of the reference run's time (models + shards,
  // plus 20%) after the command reports its backend (tsx and tfjs start-up take longer than the work itself)
  const delay = Math.floor(Math.random() * ref.ms * 1.2);
  let timer: NodeJS.Timeout | undefined;
  const killed = await runCli(
    'muse-data',
    ['tokenize', dir, '--backend', 'wasm', '--batch', '4', '--data-root', killRoot],
    {
      onStderr: (text, kill) => void (!timer && /tfjs backend/.test(text) && (timer = setTimeout(kill, delay))),
    },
  );
  clearTimeout(timer);
  // a shard counts as done only when every cache (tokens and text) lists it: the kill can land between the two
  // manifest writes, and then the rerun must redo that shard
  const tokenShards = Object.keys((await readCacheManifest(path.join(dir, 'tokens', BUILTIN_VQ_ID)))?.shards ?? {});
  const textShards = new Set(Object.keys((await readCacheManifest(path.join(dir, 'text', TEXT_ID)))?.shards ?? {}));
  const doneBefore = tokenShards.filter((s) => textShards.has(s)).length;
  console.log(
    `kill -9 ${delay} ms after start-up (reference run ${Math.round(ref.ms)} ms): ${killed.signal ?? `exited ${killed.code}`}, ${doneBefore}/${SHARDS} shard(s) in both manifests (${tokenShards.length} in the tokens one)`,
  );

  const rerun = await cli('tokenize', dir, '--backend', 'wasm', '--batch', '4', '--data-root', killRoot);
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(rerun.stdout, new RegExp(`${SHARDS - doneBefore} shard\\(s\\) tokenized .* ${doneBefore} already done`));
  assertSameCaches(await cacheContents(dir), ref.caches, 'after kill + rerun');
  const v = await cli('verify', dir, '--data-root', killRoot);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  await rm(dir, { recursive: true });
});

test('--workers 2: shards tokenized in two processes, caches byte-identical to --workers 1, verify passes', async () => {
  const ref = await referenceRun();
  const dir = await copyOfShards('muse-tokenize-workers-');
  const s = await runTokenize({
    datasetDir: dir,
    text: ['byt5-tiny'],
    batch: 4,
    includeFallbacks: false,
    log: quiet,
    workers: 2,
  });
  assert.deepEqual(
    s.shards_done,
    Array.from({ length: SHARDS }, (_, i) => i),
  );
  assertSameCaches(await cacheContents(dir), ref.caches, '--workers 2');
  assert.deepEqual((await verifyCaches(dir)).problems, []);
  const again = await cli('tokenize', dir, '--workers', '2', '--backend', 'wasm');
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`0 shard\\(s\\) tokenized .* ${SHARDS} already done`));
  await rm(dir, { recursive: true });
});
