// `muse-data tokenize --vq BASE --vq HIGH`: one small shard of the bundled sample tokenized by two VQGANs
// writes both token caches side by side with the same sample keys (the text cache once), and the super-res
// stage's paired loader serves them together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { initBackend } from '../../src/runtime/backend.ts';
import { VQGAN } from '../../src/models/vqgan/index.ts';
import { BUILTIN_VQ_ID } from '../../src/models/registry.ts';
import { readCacheManifest, readCacheTable, readTokenTable } from '../../src/dataset/cache-format.ts';
import { openPairedDataset, type PairedBatch } from '../../src/train/superres/paired-loader.ts';
import { readdir } from 'node:fs/promises';
import { runCli } from '../helpers/cli.ts';

const root = path.resolve(import.meta.dirname, '../..');

const cli = (...argv: string[]) => runCli('muse-data', argv);

test('tokenize --vq twice writes base and super-res caches keyed alike; the paired loader reads both', async () => {
  await initBackend('wasm', { quiet: true });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-tokenize-sr-'));
  const file = path.join(root, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 12 }), file);
  const dataRoot = path.join(dir, 'root');
  await runFetch({ cfg, datasetDir: dir, dataRoot, projectRoot: root, workers: 1, logFormat: 'json', shards: '0-0' });
  // The super-res VQGAN: 64 px input like the built-in one, but f4 (16x16 tokens against the built-in 8x8).
  const hiDir = path.join(dir, 'vq-hi');
  const hi = VQGAN.create(
    {
      resolution: 64,
      hiddenChannels: 32,
      channelMult: [1, 1, 1],
      numResBlocks: 1,
      zChannels: 4,
      quantizedEmbedDim: 4,
      numEmbeddings: 32,
    },
    5,
  );
  await hi.save(hiDir);
  hi.dispose();

  const same = await cli('tokenize', dir, '--vq', hiDir, '--vq', hiDir, '--data-root', dataRoot);
  assert.equal(same.code, 1);
  assert.match(same.stderr, /given twice/);
  const r = await cli(
    'tokenize',
    dir,
    '--vq',
    'builtin',
    '--vq',
    hiDir,
    '--text',
    'byt5-tiny',
    '--backend',
    'wasm',
    '--data-root',
    dataRoot,
  );
  assert.equal(r.code, 0, r.stderr);
  const ids = (await readdir(path.join(dir, 'tokens'))).sort();
  assert.equal(ids.length, 2, `token caches: ${ids}`);
  assert.ok(ids.includes(BUILTIN_VQ_ID));
  const hiId = ids.find((i) => i !== BUILTIN_VQ_ID)!;
  assert.deepEqual(await readdir(path.join(dir, 'text')), ['byt5-tiny-local-seed0']);
  const low = readTokenTable(await readCacheTable(path.join(dir, 'tokens', BUILTIN_VQ_ID, '00000.arrow')));
  const high = readTokenTable(await readCacheTable(path.join(dir, 'tokens', hiId, '00000.arrow')));
  assert.ok(low.keys.length > 0);
  assert.deepEqual(high.keys, low.keys, 'both caches hold the same samples in the same order');
  assert.equal(low.tokens.length, low.keys.length * 64);
  assert.equal(high.tokens.length, high.keys.length * 256);
  assert.ok((await readCacheManifest(path.join(dir, 'tokens', hiId)))!.shards['00000']);

  const paired = await openPairedDataset(
    { datasetDir: dir, vqId: hiId, textId: 'byt5-tiny-local-seed0', batchSize: 2, seed: 0, shuffleBuffer: 4 },
    BUILTIN_VQ_ID,
  );
  const b = (await paired.next()) as PairedBatch;
  assert.deepEqual(b.imageShape, [2, 256]);
  assert.deepEqual(b.lowresShape, [2, 64]);
  assert.ok(b.textShape && b.textShape[2] === 256);
  const row = low.keys.indexOf(b.keys[0]);
  assert.deepEqual(Array.from(b.lowresIds.slice(0, 64)), Array.from(low.tokens.slice(row * 64, (row + 1) * 64)));
  assert.deepEqual(Array.from(b.imageIds.slice(0, 256)), Array.from(high.tokens.slice(row * 256, (row + 1) * 256)));
});
