/**
 * The two halves meet: the bundled sample fetched, tokenized by `muse-data tokenize`, and read back by the
 * training loader — every ok sample once per epoch, with its own tokens and caption states.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { readManifest } from '../../src/dataset/manifest.ts';
import { initBackend } from '../../src/runtime/backend.ts';
import { BUILTIN_VQ_ID } from '../../src/models/registry.ts';
import { runTokenize } from '../../src/tokenize/run-tokenize.ts';
import { readTokenTable } from '../../src/dataset/cache-format.ts';
import { openTokenDataset } from '../../src/train/data/loader.ts';

const root = path.resolve(import.meta.dirname, '../..');

test('fetch -> tokenize -> loader: each ok sample once per epoch with its own tokens and text', async () => {
  await initBackend('wasm', { quiet: true });
  const dataset = await mkdtemp(path.join(os.tmpdir(), 'muse-e2e-'));
  const dataRoot = path.join(dataset, 'root');
  const file = path.join(root, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 12 }), file);
  await runFetch({
    cfg,
    datasetDir: dataset,
    dataRoot,
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
    shards: '0-1',
  });
  const summary = await runTokenize({
    datasetDir: dataset,
    text: ['byt5-tiny'],
    batch: 8,
    includeFallbacks: false,
    dataRoot,
    log: () => {},
  });
  assert.deepEqual(summary.shards_done, [0, 1]);

  const okKeys = [
    ...(await readManifest(path.join(dataset, 'shards', '00000.arrow'))),
    ...(await readManifest(path.join(dataset, 'shards', '00001.arrow'))),
  ]
    .filter((r) => r.status === 'ok')
    .map((r) => ({ key: r.key, caption: r.caption }));
  // Tokens per key, as tokenize wrote them.
  const tokensByKey = new Map<string, number[]>();
  for (const shard of ['00000', '00001']) {
    const t = readTokenTable(
      tableFromIPC(await readFile(path.join(dataset, 'tokens', BUILTIN_VQ_ID, `${shard}.arrow`))),
    );
    const n = t.tokens.length / t.keys.length;
    t.keys.forEach((k, i) => tokensByKey.set(k, Array.from(t.tokens.subarray(i * n, (i + 1) * n))));
  }
  assert.deepEqual([...tokensByKey.keys()].sort(), okKeys.map((o) => o.key).sort());

  const loader = await openTokenDataset({
    datasetDir: dataset,
    vqId: BUILTIN_VQ_ID,
    textId: 'byt5-tiny-local-seed0',
    batchSize: 4,
    seed: 7,
    shuffleBuffer: 8,
    dropLast: false,
  });
  const seen: string[] = [];
  while (seen.length < okKeys.length) {
    const b = await loader.next();
    assert.equal(b.epoch, 0);
    const n = b.imageShape[1];
    b.keys.forEach((key, i) => {
      seen.push(key);
      assert.deepEqual(Array.from(b.imageIds.subarray(i * n, (i + 1) * n)), tokensByKey.get(key), `tokens of ${key}`);
      // byte-level ids: caption bytes + 3, then EOS; the mask covers exactly the real length
      const caption = okKeys.find((o) => o.key === key)!.caption!;
      assert.equal(b.textLengths?.[i], Buffer.byteLength(caption) + 1, `text length of ${key}`);
    });
  }
  assert.deepEqual([...seen].sort(), okKeys.map((o) => o.key).sort(), 'every ok sample exactly once');
  assert.notDeepEqual(
    seen,
    okKeys.map((o) => o.key),
    'shuffled',
  );
});
