import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tableFromIPC } from 'apache-arrow';
import os from 'node:os';
import path from 'node:path';
import { openTokenDataset, type Batch, type TokenDatasetOptions } from '../../src/train/data/loader.ts';
import {
  defaultTextLength,
  syntheticHidden,
  syntheticKey,
  syntheticPooled,
  syntheticToken,
  writeSyntheticCaches,
} from '../helpers/synthetic-cache.ts';
import { cacheShardPath, tableBytes, textTable } from '../../src/dataset/cache-format.ts';
import { writeDuplicatesFile } from '../../src/dataset/decisions-file.ts';
import { writeManifest, type ManifestRow } from '../../src/dataset/manifest.ts';
import { shardPaths } from '../../src/dataset/names.ts';
import { textShard, tokenShard } from '../../src/train/data/cache-reader.ts';
import { batchTensors } from '../../src/train/data/tensors.ts';

const SHARDS = { 0: 7, 1: 5, 2: 6, 3: 4 }; // 22 samples
const ALL_KEYS = Object.entries(SHARDS)
  .flatMap(([s, n]) => Array.from({ length: n }, (_, p) => syntheticKey(Number(s), p)))
  .sort();

async function withDataset(
  fn: (dir: string) => Promise<void>,
  extra: Partial<Parameters<typeof writeSyntheticCaches>[1]> = {},
): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-loader-'));
  try {
    await writeSyntheticCaches(dir, { shards: SHARDS, pooledDim: 3, ...extra });
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const opts = (dir: string, o: Partial<TokenDatasetOptions> = {}): TokenDatasetOptions => ({
  datasetDir: dir,
  vqId: 'vq-test',
  textId: 'text-test',
  batchSize: 3,
  seed: 7,
  shuffleBuffer: 5,
  ...o,
});

const parseKey = (key: string) => ({ shard: Number(key.slice(0, 5)), pos: Number(key.slice(5)) });

async function take(o: TokenDatasetOptions, count: number): Promise<Batch[]> {
  const loader = await openTokenDataset(o);
  const out: Batch[] = [];
  for (let i = 0; i < count; i++) out.push(await loader.next());
  return out;
}

/** Epochs of keys from a loader that keeps short last batches. */
async function epochs(o: TokenDatasetOptions, count: number): Promise<string[][]> {
  const loader = await openTokenDataset({ ...o, dropLast: false });
  const out: string[][] = [];
  while (out.length <= count) {
    const b = await loader.next();
    (out[b.epoch] ??= []).push(...b.keys);
  }
  return out.slice(0, count);
}

test('batch shapes, values, padding and mask', async () => {
  await withDataset(async (dir) => {
    const [b] = await take(opts(dir, { batchSize: 4 }), 1);
    const n = 6;
    assert.equal(b.size, 4);
    assert.deepEqual(b.imageShape, [4, n]);
    assert.equal(b.imageIds.length, 4 * n);
    const L = Math.max(...b.keys.map((k) => defaultTextLength(parseKey(k).shard, parseKey(k).pos)));
    assert.deepEqual(b.textShape, [4, L, 4]);
    assert.deepEqual(b.pooledShape, [4, 3]);
    assert.equal(b.classIds, undefined);
    b.keys.forEach((key, i) => {
      const { shard, pos } = parseKey(key);
      for (let j = 0; j < n; j++) assert.equal(b.imageIds[i * n + j], syntheticToken(shard, pos, j, 1024));
      const len = defaultTextLength(shard, pos);
      assert.equal(b.textLengths![i], len);
      for (let t = 0; t < L; t++) {
        assert.equal(b.textMask![i * L + t], t < len ? 1 : 0);
        for (let d = 0; d < 4; d++)
          assert.equal(b.textHidden![(i * L + t) * 4 + d], t < len ? syntheticHidden(shard, pos, t, d) : 0);
      }
      for (let k = 0; k < 3; k++) assert.equal(b.pooled![i * 3 + k], syntheticPooled(shard, pos, k));
    });
    // a fixed text length pads or truncates every text to it
    const [c] = await take(opts(dir, { batchSize: 4, textMaxLength: 2 }), 1);
    assert.deepEqual(c.textShape, [4, 2, 4]);
    c.keys.forEach((key, i) =>
      assert.equal(c.textLengths![i], Math.min(2, defaultTextLength(parseKey(key).shard, parseKey(key).pos))),
    );
  });
});

test('async iteration yields the same batches as next()', async () => {
  await withDataset(async (dir) => {
    const expected = await take(opts(dir), 9);
    const got: Batch[] = [];
    for await (const b of await openTokenDataset(opts(dir))) {
      got.push(b);
      if (got.length === 9) break;
    }
    assert.deepEqual(
      got.map((b) => b.keys),
      expected.map((b) => b.keys),
    );
  });
});

test('same seed gives the same batches, another seed another order', async () => {
  await withDataset(async (dir) => {
    const keys = async (seed: number) => (await take(opts(dir, { seed }), 12)).flatMap((b) => b.keys);
    const a = await keys(1);
    assert.deepEqual(await keys(1), a);
    assert.notDeepEqual(await keys(2), a);
  });
});

test('every sample exactly once per epoch, a new order each epoch', async () => {
  await withDataset(async (dir) => {
    const es = await epochs(opts(dir, { batchSize: 4 }), 3);
    for (const e of es) assert.deepEqual([...e].sort(), ALL_KEYS);
    assert.notDeepEqual(es[0], es[1]);
    // dropLast (default): 22 samples in batches of 4 give 5 full batches per epoch
    const batches = await take(opts(dir, { batchSize: 4 }), 6);
    assert.deepEqual(
      batches.map((b) => b.epoch),
      [0, 0, 0, 0, 0, 1],
    );
    assert.ok(batches.every((b) => b.size === 4));
  });
});

test('a loader restored after k batches yields what an uninterrupted one yields', async () => {
  await withDataset(async (dir) => {
    // batch 3, buffer 5: 7 batches per epoch; k = 6, 7, 8 straddle the epoch boundary; buffer part-full at the end
    const o = opts(dir, { shuffleBuffer: 5 });
    const total = 18;
    const reference = await take(o, total);
    for (const k of [0, 1, 4, 6, 7, 8, 13]) {
      const first = await openTokenDataset(o);
      for (let i = 0; i < k; i++) await first.next();
      const state = JSON.parse(JSON.stringify(first.state()));
      const resumed = await openTokenDataset({ ...o, resumeFrom: state });
      for (let i = k; i < total; i++) {
        const b = await resumed.next();
        assert.deepEqual(b.keys, reference[i].keys, `k=${k}, batch ${i}`);
        assert.deepEqual(b.imageIds, reference[i].imageIds);
        assert.deepEqual(b.textHidden, reference[i].textHidden);
        assert.equal(b.epoch, reference[i].epoch);
      }
    }
    // restore() on an open loader, with a state taken while the buffer drains at the end of an epoch
    const o2 = opts(dir, { batchSize: 2 });
    const reference2 = await take(o2, 14);
    const a = await openTokenDataset(o2);
    for (let i = 0; i < 10; i++) await a.next();
    const s = a.state();
    assert.ok(s.exhausted && s.buffer.length === 2, JSON.stringify(s));
    const b = await openTokenDataset(o2);
    await b.next();
    await b.restore(s);
    for (let i = 10; i < 14; i++) assert.deepEqual((await b.next()).keys, reference2[i].keys);
  });
});

test('restore refuses a state of another seed, shard list or changed cache', async () => {
  await withDataset(async (dir) => {
    const a = await openTokenDataset(opts(dir));
    await a.next();
    await assert.rejects(openTokenDataset(opts(dir, { seed: 8, resumeFrom: a.state() })), /seed/);
    await assert.rejects(openTokenDataset(opts(dir, { shards: [0, 1], resumeFrom: a.state() })), /shard list/);
    const state = a.state();
    state.buffer[0][2] = 'not-a-key';
    await assert.rejects(openTokenDataset(opts(dir, { resumeFrom: state })), /cache changed/);
  });
});

test('without a shuffle buffer, shards are read whole in the epoch order', async () => {
  await withDataset(async (dir) => {
    const [e] = await epochs(opts(dir, { shuffleBuffer: 0 }), 1);
    const shardSeq = e.map((k) => k.slice(0, 5)).filter((s, i, all) => s !== all[i - 1]);
    assert.equal(shardSeq.length, 4, 'each shard in one run');
    for (let i = 1; i < e.length; i++) {
      if (e[i].slice(0, 5) === e[i - 1].slice(0, 5)) assert.equal(parseKey(e[i]).pos, parseKey(e[i - 1]).pos + 1);
    }
    const [f] = await epochs(opts(dir, { shuffleBuffer: 0, seed: 99 }), 1);
    assert.notDeepEqual(
      f.map((k) => k.slice(0, 5)).filter((s, i, all) => s !== all[i - 1]),
      shardSeq,
    );
  });
});

test('dedup decisions are skipped', async () => {
  await withDataset(async (dir) => {
    const dups = [syntheticKey(0, 3), syntheticKey(2, 0), syntheticKey(3, 3)];
    await writeDuplicatesFile(
      dir,
      dups.map((key) => ({
        key,
        duplicate_of: syntheticKey(0, 0),
        duplicate_of_dataset: 'x',
        kind: 'sha256',
        distance: null,
      })),
      '{}',
    );
    const [e0, e1] = await epochs(opts(dir), 2);
    const expected = ALL_KEYS.filter((k) => !dups.includes(k));
    assert.deepEqual([...e0].sort(), expected);
    assert.deepEqual([...e1].sort(), expected);
  });
});

test('ImageNet class ids come from the shard manifests; tokens alone without a text cache', async () => {
  await withDataset(
    async (dir) => {
      const cls = (shard: number, pos: number) => (shard * 10 + pos) % 1000;
      for (const [s, count] of Object.entries(SHARDS)) {
        const shard = Number(s);
        // the manifest has every input row, some not in the cache (a failed one without class) and in key order
        const rows = Array.from({ length: count + 1 }, (_, p): ManifestRow => ({
          key: syntheticKey(shard, p),
          row: p,
          url: `http://x/${p}`,
          caption: null,
          status: p < count ? 'ok' : 'failed',
          reason: null,
          error: null,
          width: null,
          height: null,
          original_width: null,
          original_height: null,
          bytes: null,
          sha256: null,
          phash: null,
          cls: p < count ? cls(shard, p) : null,
          meta: null,
        }));
        await writeManifest(shardPaths(dir, shard).manifest, rows);
      }
      const batches = await take(opts(dir, { textId: undefined, batchSize: 5 }), 8);
      for (const b of batches) {
        assert.equal(b.textHidden, undefined);
        assert.deepEqual(
          [...b.classIds!],
          b.keys.map((k) => cls(parseKey(k).shard, parseKey(k).pos)),
        );
      }
      await assert.rejects(
        take(opts(dir, { textId: undefined, classIds: true, datasetDir: dir + '-none' }), 1),
        /no token cache shards/,
      );
    },
    { noText: true },
  );
});

test('tokens and text out of step: a clear error naming the shard and verify', async () => {
  await withDataset(async (dir) => {
    const keys = [syntheticKey(2, 1), syntheticKey(2, 0), ...[2, 3, 4, 5].map((p) => syntheticKey(2, p))];
    const table = textTable({
      keys,
      ids: keys.map(() => Int32Array.of(1)),
      hidden: keys.map(() => new Uint16Array(4)),
      pooled: new Float32Array(18),
      dim: 4,
      pooledDim: 3,
      encoderId: 'text-test',
    });
    await writeFile(cacheShardPath(dir, 'text', 'text-test', 2), tableBytes(table));
    await assert.rejects(take(opts(dir, { shuffleBuffer: 100 }), 1), (err: Error) => {
      assert.match(err.message, /00002\.arrow/);
      assert.match(err.message, /muse-data verify/);
      assert.match(err.message, /000020000 vs 000020001/);
      return true;
    });
  });
});

test('a missing text cache file is named', async () => {
  await withDataset(async (dir) => {
    await rm(cacheShardPath(dir, 'text', 'text-test', 3));
    await assert.rejects(
      take(opts(dir, { shuffleBuffer: 100 }), 1),
      /text-test\/00003\.arrow is missing: run muse-data tokenize/,
    );
  });
});

test('the empty-caption embedding', async () => {
  await withDataset(async (dir) => {
    const e = await (await openTokenDataset(opts(dir))).emptyText();
    assert.equal(e.length, 2);
    assert.equal(e.dim, 4);
    assert.equal(e.hidden[1 * 4 + 2], syntheticHidden(99999, 0, 1, 2));
    assert.deepEqual(
      [...e.pooled!],
      [0, 1, 2].map((k) => syntheticPooled(99999, 0, k)),
    );
  });
});

test('several datasets read as one, shard subsets', async () => {
  await withDataset(async (dir) => {
    const other = await mkdtemp(path.join(os.tmpdir(), 'muse-loader-b-'));
    try {
      await writeSyntheticCaches(other, { shards: { 5: 3 }, pooledDim: 3 });
      const [e] = await epochs(opts(dir, { datasetDirs: [dir, other], datasetDir: undefined, shards: undefined }), 1);
      assert.equal(e.length, 25);
      // weights: the second dataset twice per epoch; then the first at half (2 of its 4 shards, seeded per epoch)
      const both = { datasetDirs: [dir, other], datasetDir: undefined };
      const [w] = await epochs(opts(dir, { ...both, weights: [1, 2] }), 1);
      assert.equal(w.length, 28);
      assert.equal(w.filter((k) => k.startsWith('00005')).length, 6);
      assert.equal(new Set(w).size, 25);
      const halves = await epochs(opts(dir, { ...both, weights: [0.5, 1] }), 4);
      const shardsOf = (e: string[]) =>
        [...new Set(e.filter((k) => !k.startsWith('00005')).map((k) => k.slice(0, 5)))].sort();
      for (const e of halves) assert.equal(shardsOf(e).length, 2);
      assert.ok(new Set(halves.map((e) => shardsOf(e).join())).size > 1, 'the half changes between epochs');
      // resume with weights
      const wo = opts(dir, { ...both, weights: [0.5, 2], batchSize: 4 });
      const ref = await take(wo, 12);
      const a = await openTokenDataset(wo);
      for (let i = 0; i < 5; i++) await a.next();
      const resumed = await openTokenDataset({ ...wo, resumeFrom: JSON.parse(JSON.stringify(a.state())) });
      for (let i = 5; i < 12; i++) assert.deepEqual((await resumed.next()).keys, ref[i].keys);
      await assert.rejects(openTokenDataset(opts(dir, { ...both, weights: [1] })), /weights/);
      const [sub] = await epochs(opts(dir, { shards: [1, 3] }), 1);
      assert.deepEqual(
        [...sub].sort(),
        ALL_KEYS.filter((k) => k.startsWith('00001') || k.startsWith('00003')),
      );
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

test('cache columns are read as views of the file buffer, not copies', async () => {
  await withDataset(async (dir) => {
    const tokenFile = cacheShardPath(dir, 'vq', 'vq-test', 1);
    const textFile = cacheShardPath(dir, 'text', 'text-test', 1);
    const tokenBytes = await readFile(tokenFile);
    const textBytes = await readFile(textFile);
    const tokens = tokenShard(tableFromIPC(tokenBytes), tokenFile);
    const text = textShard(tableFromIPC(textBytes), textFile);
    assert.equal(tokens.tokens.buffer, tokenBytes.buffer);
    assert.ok(tokens.tokens instanceof Uint16Array);
    assert.equal(tokens.tokens.length, 5 * 6);
    assert.equal(text.hidden.buffer, textBytes.buffer);
    assert.deepEqual([...text.offsets], [0, 2, 5, 9, 14, 15]);
  });
});

test('batch tensors for tfjs', async () => {
  await withDataset(async (dir) => {
    const [b] = await take(opts(dir, { batchSize: 4, textMaxLength: 5 }), 1);
    const t = batchTensors(b);
    assert.deepEqual(t.imageIds.shape, [4, 6]);
    assert.equal(t.imageIds.dtype, 'int32');
    assert.deepEqual(t.textHidden!.shape, [4, 5, 4]);
    assert.deepEqual(t.textMask!.shape, [4, 5]);
    assert.deepEqual(t.pooled!.shape, [4, 3]);
    assert.deepEqual([...t.textHidden!.dataSync()], [...b.textHidden!]);
    Object.values(t).forEach((x) => x.dispose());
  });
});
