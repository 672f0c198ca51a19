/**
 * Deduplication: multi-index hashing against brute force, near-duplicate thresholds on crafted hashes, the
 * greedy rule, exact kinds, determinism across insertion order and incremental runs, references, re-encoded
 * images through the real image stage, --apply on fetched shards, and the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { openIndex, type SampleInput } from '../../src/index-db/db.ts';
import { bandRadii, halvesToHex, distance64, phashHalves, flipMasks, MAX_DISTANCE } from '../../src/dedup/bands.ts';
import { NearIndex, PairList, greedyNearDuplicates } from '../../src/dedup/near-index.ts';
import { bandQuery, findNearDuplicates } from '../../src/dedup/lookup.ts';
import { runDedup, type DedupOptions } from '../../src/dedup/run-dedup.ts';
import { loadDuplicateKeys, readDuplicatesFile } from '../../src/dataset/decisions-file.ts';
import { createImageProcessor } from '../../src/image/index.ts';
import { DEFAULT_IMAGE, deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { readManifest } from '../../src/dataset/manifest.ts';
import { readTarSamples } from '../../src/shards/tar-reader.ts';
import { main } from '../../src/cli/muse-data.ts';
import { mulberry32 as rng } from '../../src/util/prng.ts';
import { runCli } from '../helpers/cli.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = (p: string) => mkdtemp(path.join(os.tmpdir(), `muse-dedup-${p}-`));
const quiet = () => {};

const rand32 = (r: () => number) => (r() * 2 ** 32) | 0;

/** Flips the given bit positions (0 = most significant of 64) of a hex hash. */
function flip(hex: string, bits: number[]): string {
  let { hi, lo } = phashHalves(hex);
  for (const b of bits) {
    if (b < 32) hi ^= 1 << (31 - b);
    else lo ^= 1 << (63 - b);
  }
  return halvesToHex(hi, lo);
}

/** k distinct random bit positions. */
function randomBits(r: () => number, k: number): number[] {
  const set = new Set<number>();
  while (set.size < k) set.add(Math.floor(r() * 64));
  return [...set];
}

// ---------------------------------------------------------------- multi-index hashing

test('flip masks and band radii: the sharper pigeonhole bound', () => {
  assert.deepEqual(
    [0, 1, 2, 3].map((r) => flipMasks(r).length),
    [1, 17, 137, 697],
  );
  assert.equal(flipMasks(1)[0], 0);
  assert.deepEqual(bandRadii(0), [0, -1, -1, -1]);
  assert.deepEqual(bandRadii(2), [0, 0, 0, -1]);
  assert.deepEqual(bandRadii(6), [1, 1, 1, 0]);
  assert.deepEqual(bandRadii(7), [1, 1, 1, 1]);
  assert.deepEqual(bandRadii(10), [2, 2, 2, 1]);
  assert.throws(() => bandRadii(16), /0\.\.15/);
});

test('multi-index probing finds exactly what a brute-force scan finds (random hashes, several radii)', () => {
  const r = rng(7);
  // Clusters of near hashes (random hashes are almost never within 15 bits of each other) plus random ones.
  const hexes: string[] = [];
  while (hexes.length < 3000) {
    const seed = halvesToHex(rand32(r), rand32(r));
    hexes.push(seed);
    const n = Math.floor(r() * 4);
    for (let i = 0; i < n; i++) hexes.push(flip(seed, randomBits(r, Math.floor(r() * 18))));
  }
  const hi = Int32Array.from(hexes, (h) => phashHalves(h).hi);
  const lo = Int32Array.from(hexes, (h) => phashHalves(h).lo);
  const index = new NearIndex(hi, lo);
  const triples = (p: PairList) => Array.from({ length: p.length }, (_, k) => p.data.slice(3 * k, 3 * k + 3).join(','));
  const sort = (a: string[]) => [...a].sort();
  for (const radius of [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, MAX_DISTANCE]) {
    for (const from of [0, 2000]) {
      const want: string[] = [];
      for (let i = from; i < hexes.length; i++) {
        for (let c = 0; c < i; c++) {
          const d = distance64(hi[i], lo[i], hi[c], lo[c]);
          if (d <= radius) want.push(`${i},${c},${d}`);
        }
      }
      assert.ok(want.length > 0, `radius ${radius}: the data has pairs to find`);
      // one lookup per position: pairs come out in order of i
      const looked = new PairList();
      index.earlierNeighbours(hi, lo, radius, from, hexes.length, looked);
      assert.deepEqual(sort(triples(looked)), sort(want), `lookups, radius ${radius}, from ${from}`);
      assert.ok(
        triples(looked).every((t, k, all) => k === 0 || Number(t.split(',')[0]) >= Number(all[k - 1].split(',')[0])),
      );
      // bucket join: the same pairs, grouped by i
      const joined = index.allPairs(radius, from);
      assert.deepEqual(sort(triples(joined)), sort(want), `join, radius ${radius}, from ${from}`);
      assert.ok(
        triples(joined).every((t, k, all) => k === 0 || Number(t.split(',')[0]) >= Number(all[k - 1].split(',')[0])),
      );
    }
    // point queries, including hashes not in the list
    for (let q = 0; q < 50; q++) {
      const qh = q % 2 ? hi[q * 37] ^ (1 << (q % 31)) : rand32(r);
      const ql = lo[q * 37];
      const brute = [];
      for (let c = 0; c < hexes.length; c++) {
        const d = distance64(qh, ql, hi[c], lo[c]);
        if (d <= radius) brute.push({ pos: c, distance: d });
      }
      assert.deepEqual(index.within(qh, ql, radius), brute, `radius ${radius}, query ${q}`);
    }
  }
});

test('greedy rule: a duplicate of a duplicate is kept when it is far from every kept sample', () => {
  // A=0, B at 4 bits from A, C at 4 bits from B and 8 from A; D at 2 bits from A and C.
  const a = '0000000000000000';
  const b = flip(a, [0, 16, 32, 48]);
  const c = flip(b, [1, 17, 33, 49]);
  const d = flip(a, [1, 17]);
  const hexes = [a, b, c, d];
  const hi = Int32Array.from(hexes, (h) => phashHalves(h).hi);
  const lo = Int32Array.from(hexes, (h) => phashHalves(h).lo);
  const pairs = new NearIndex(hi, lo).allPairs(5, 0);
  const kept = new Uint8Array(4);
  const decisions = greedyNearDuplicates(pairs, kept, 0);
  // B dup of A; C kept (only near B, which is not kept); D near A (2) and C (4): names the nearest kept, A.
  assert.deepEqual(decisions, [
    { pos: 1, of: 0, distance: 4 },
    { pos: 3, of: 0, distance: 2 },
  ]);
  assert.deepEqual([...kept], [1, 0, 1, 0]);
});

// ---------------------------------------------------------------- dedup runs on an index

interface Fixture {
  dataRoot: string;
  dir: string;
  id: number;
}

async function fixture(name = 'ds', dataRoot?: string): Promise<Fixture> {
  dataRoot ??= await tmp('root');
  const dir = path.join(dataRoot, name);
  await mkdir(path.join(dir, 'shards'), { recursive: true });
  const index = openIndex(dataRoot);
  const id = index.registerDataset(name, dir);
  index.close();
  return { dataRoot, dir, id };
}

function record(f: Fixture, rows: SampleInput[]): void {
  const index = openIndex(f.dataRoot);
  index.recordSamples(f.id, rows);
  index.close();
}

const key = (shard: number, pos: number) => `${String(shard).padStart(5, '0')}${String(pos).padStart(4, '0')}`;

function sample(shard: number, pos: number, phash: string, extra: Partial<SampleInput> = {}): SampleInput {
  const k = key(shard, pos);
  return {
    key: k,
    shard,
    url: `https://img.example/${k}.jpg`,
    sha256: k.padStart(64, 'a'),
    phash,
    caption: `caption ${k}`,
    status: 'ok',
    ...extra,
  };
}

const dedup = (f: Fixture, o: Partial<DedupOptions> = {}) =>
  runDedup({ dataRoot: f.dataRoot, datasetDir: f.dir, log: quiet, ...o });

function decisions(f: Fixture): Array<Record<string, unknown>> {
  const index = openIndex(f.dataRoot);
  try {
    return index.db
      .prepare(
        'SELECT key, duplicate_of_dataset, duplicate_of_key, kind, distance, applied FROM dedup_decisions WHERE dataset_id = ? ORDER BY key',
      )
      .all(f.id) as Array<Record<string, unknown>>;
  } finally {
    index.close();
  }
}

test('near duplicate found at distance <= k and not at k+1 (flips in one band, spread over bands)', async () => {
  const r = rng(3);
  for (const k of [0, 3, 4, 6, 7, 10, 15]) {
    for (const spread of [false, true]) {
      const f = await fixture();
      const base = halvesToHex(rand32(r), rand32(r));
      // bits to flip: k+1 of them, either in band 1 (bits 16..31) only or round-robin over the four bands
      const bits = Array.from({ length: k + 1 }, (_, i) => (spread ? (i % 4) * 16 + Math.floor(i / 4) : 16 + i));
      record(f, [sample(0, 0, base), sample(0, 1, flip(base, bits.slice(0, k))), sample(0, 2, flip(base, bits))]);
      await dedup(f, { distance: k, kinds: ['phash'] });
      const what = `k=${k}${spread ? ' spread' : ''}`;
      assert.deepEqual(
        decisions(f),
        [
          {
            key: key(0, 1),
            duplicate_of_dataset: f.id,
            duplicate_of_key: key(0, 0),
            kind: 'phash',
            distance: k,
            applied: 0,
          },
        ],
        what,
      );
      // the same through the index's band columns
      const index = openIndex(f.dataRoot);
      assert.deepEqual(
        findNearDuplicates(index.db, f.id, base, k).map((m) => m.key),
        [key(0, 0), key(0, 1)],
        what,
      );
      index.close();
    }
  }
});

test('the index band columns: SQL multi-index lookups equal brute force, and use the band indexes', async () => {
  const f = await fixture();
  const r = rng(5);
  const rows: SampleInput[] = [];
  for (let i = 0; rows.length < 1500; i++) {
    const seed = halvesToHex(rand32(r), rand32(r));
    rows.push(sample(0, rows.length, seed));
    for (let j = 0; j < 2; j++) rows.push(sample(0, rows.length, flip(seed, randomBits(r, Math.floor(r() * 14)))));
  }
  record(f, rows);
  await dedup(f, { kinds: ['url'] }); // fills dedup_phash_bands
  const index = openIndex(f.dataRoot);
  const plan = index.db.prepare(`EXPLAIN QUERY PLAN ${bandQuery(2)}`).all(f.id, '[1,2]') as Array<{ detail: string }>;
  assert.match(
    plan.map((p) => p.detail).join(' | '),
    /SEARCH dedup_phash_bands USING INDEX dedup_phash_band2 \(dataset_id=\? AND band2=\?\)/,
  );
  for (const radius of [0, 5, 6, 11, 14]) {
    for (let q = 0; q < 40; q++) {
      const query = q % 2 ? rows[q * 31].phash! : flip(rows[q * 31].phash!, randomBits(r, 3));
      const want = rows
        .map((s) => ({
          key: s.key,
          distance: distance64(
            phashHalves(s.phash!).hi,
            phashHalves(s.phash!).lo,
            phashHalves(query).hi,
            phashHalves(query).lo,
          ),
        }))
        .filter((m) => m.distance <= radius)
        .sort((a, b) => a.distance - b.distance || (a.key < b.key ? -1 : 1));
      assert.deepEqual(findNearDuplicates(index.db, f.id, query, radius), want, `radius ${radius} query ${q}`);
    }
  }
  index.close();
});

test('exact kinds: URL spellings that normalise equal, identical bytes, (image, caption) pairs; lowest key kept', async () => {
  const f = await fixture();
  const h = (i: number) => halvesToHex(0x12345678 * (i + 1), 0x9abcdef * (i + 3));
  record(f, [
    // a URL dup written differently, in a LOWER key than its twin's recorded order of insertion
    sample(2, 5, h(1), { url: 'HTTP://Example.COM:80/a/%7euser/p%c3%a9.jpg#frag' }),
    sample(0, 3, h(2), { url: 'http://example.com/a/~user/p%C3%A9.jpg' }),
    // identical bytes at different URLs
    sample(1, 0, h(3), { sha256: 'ab'.repeat(32) }),
    sample(0, 9, h(4), { sha256: 'ab'.repeat(32) }),
    sample(3, 1, h(5), { sha256: 'ab'.repeat(32) }),
    // same bytes and caption (pair) vs same bytes, other caption
    sample(4, 0, h(6), { sha256: 'cd'.repeat(32), caption: 'a cat' }),
    sample(4, 1, h(7), { sha256: 'cd'.repeat(32), caption: 'a cat' }),
    sample(4, 2, h(8), { sha256: 'cd'.repeat(32), caption: 'a dog' }),
    // not ok: never takes part
    sample(5, 0, h(9), { url: 'http://example.com/a/~user/p%C3%A9.jpg', status: 'failed' }),
  ]);
  await dedup(f, { kinds: ['url', 'sha256'] });
  const pick = (rows: Array<Record<string, unknown>>) =>
    rows.map((d) => [d.key, d.duplicate_of_key, d.kind, d.distance] as [string, ...unknown[]]);
  assert.deepEqual(pick(decisions(f)), [
    [key(1, 0), key(0, 9), 'sha256', 0],
    [key(2, 5), key(0, 3), 'url', null],
    [key(3, 1), key(0, 9), 'sha256', 0],
    [key(4, 1), key(4, 0), 'sha256', 0],
    [key(4, 2), key(4, 0), 'sha256', 0],
  ]);
  await dedup(f, { kinds: ['url', 'pair'] });
  assert.deepEqual(
    pick(decisions(f)).filter((d) => d[0] >= key(4, 0)),
    [[key(4, 1), key(4, 0), 'pair', 0]],
    'pair: other caption kept',
  );
});

test('kinds run in order, each on what the previous kept: an image whose only twin was a URL duplicate is kept', async () => {
  const f = await fixture();
  const p = '00ff00ff00ff00ff';
  record(f, [
    sample(0, 0, 'ffffffff00000000', { url: 'http://x.example/u.jpg', sha256: '01'.repeat(32) }),
    sample(0, 1, p, { url: 'http://x.example/u.jpg', sha256: '02'.repeat(32) }), // url dup of 0
    sample(0, 2, p, { sha256: '02'.repeat(32) }), // same bytes as 1, but 1 is gone: kept
    sample(0, 3, flip(p, [3]), {}), // near 2 (kept) and 1 (not kept): dup of 2
  ]);
  await dedup(f);
  assert.deepEqual(
    decisions(f).map((d) => [d.key, d.duplicate_of_key, d.kind]),
    [
      [key(0, 1), key(0, 0), 'url'],
      [key(0, 3), key(0, 2), 'phash'],
    ],
  );
});

/** A dataset with planted duplicates of every kind, shards of 250. */
function plantedRows(seed: number, shards = 8): SampleInput[] {
  const r = rng(seed);
  const rows: SampleInput[] = [];
  const withImage: SampleInput[] = [];
  for (let shard = 0; shard < shards; shard++) {
    for (let pos = 0; pos < 250; pos++) {
      const prev = withImage.length ? withImage[Math.floor(r() * withImage.length)] : null;
      const roll = r();
      let s = sample(shard, pos, halvesToHex(rand32(r), rand32(r)));
      if (prev && roll < 0.08) s = { ...s, phash: flip(prev.phash!, randomBits(r, 1 + Math.floor(r() * 9))) };
      else if (prev && roll < 0.11) s = { ...s, sha256: prev.sha256, phash: prev.phash };
      else if (prev && roll < 0.13) s = { ...s, url: prev.url.replace('https://img.example', 'HTTPS://IMG.Example') };
      else if (prev && roll < 0.15)
        s = { ...s, url: prev.url.replace('https://img.example/', 'https://IMG.example:443/') };
      if (roll > 0.97) s = { ...s, status: 'filtered', sha256: null, phash: null };
      rows.push(s);
      if (s.phash) withImage.push(s);
    }
  }
  return rows;
}

function shuffled<T>(a: T[], r: () => number): T[] {
  const out = [...a];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

test('deterministic: same decisions whatever the order shards arrive in, in one run or incrementally', async () => {
  const rows = plantedRows(21);
  const byShard = (s: number) => rows.filter((x) => Number(x.key.slice(0, 5)) === s);

  // reference: everything at once, in order
  const ref = await fixture();
  record(ref, rows);
  const first = await dedup(ref);
  const want = decisions(ref);
  assert.ok(
    first.duplicates.phash > 50 && first.duplicates.sha256 > 20 && first.duplicates.url > 20,
    JSON.stringify(first.duplicates),
  );
  assert.equal(first.kept, first.samples - want.length);

  // rows inserted shuffled (as parallel fetch workers would)
  const f1 = await fixture();
  record(f1, shuffled(rows, rng(1)));
  await dedup(f1);
  assert.deepEqual(decisions(f1), want);

  // shards arrive in a scrambled order with a dedup run after each batch (later batches hold LOWER keys)
  const f2 = await fixture();
  for (const batch of [[5, 6], [7], [0, 3], [1], [2, 4]]) {
    record(f2, batch.flatMap(byShard));
    await dedup(f2);
  }
  assert.deepEqual(decisions(f2), want);

  // in order, one shard at a time: each run looks up only the new shard
  const f3 = await fixture();
  for (let s = 0; s < 8; s++) {
    record(f3, byShard(s));
    const run = await dedup(f3);
    assert.equal(
      s === 0 ? run.phash?.from_key : run.phash?.from_key?.slice(0, 5),
      s === 0 ? '' : key(s, 0).slice(0, 5),
    );
    assert.ok(s === 0 || run.phash!.lookups! <= 250, `shard ${s}: ${run.phash!.lookups} lookups`);
  }
  assert.deepEqual(decisions(f3), want);

  // a rerun with nothing new changes nothing
  const again = await dedup(f3);
  assert.equal(again.phash?.from_key, null);
  assert.equal(again.file_written, false);
  assert.deepEqual(decisions(f3), want);
  assert.deepEqual(await readDuplicatesFile(f3.dir), await readDuplicatesFile(ref.dir));
});

test('a dedup run killed (SIGKILL) at random points, then rerun: the decisions of an uninterrupted run', async () => {
  const rows = plantedRows(5, 40);
  const ref = await fixture();
  record(ref, rows);
  await dedup(ref);
  const f = await fixture();
  record(f, rows.slice(0, 5000));
  await dedup(f);
  record(f, rows.slice(5000));
  const r = rng(9);
  for (let attempt = 0; attempt < 3; attempt++) {
    const run = runCli('muse-data', ['dedup', f.dir, '--data-root', f.dataRoot]);
    await new Promise((resolve) => setTimeout(resolve, 300 + r() * 2000));
    run.kill();
    await run;
  }
  await dedup(f);
  assert.deepEqual(
    decisions(f),
    decisions(ref).map((d) => ({ ...d, duplicate_of_dataset: f.id })),
  );
  assert.deepEqual(await readDuplicatesFile(f.dir), await readDuplicatesFile(ref.dir));
});

test('a kept sample that leaves (opted out) frees its duplicates; a settings change recomputes', async () => {
  const f = await fixture();
  const a = '0123456789abcdef';
  record(f, [sample(0, 0, a), sample(0, 1, flip(a, [1, 2])), sample(0, 2, flip(a, [1, 2, 3, 4, 5, 6, 7, 8, 9]))]);
  await dedup(f);
  assert.deepEqual(
    decisions(f).map((d) => [d.key, d.duplicate_of_key]),
    [[key(0, 1), key(0, 0)]],
  );
  const index = openIndex(f.dataRoot);
  index.setSampleStatus(f.id, [key(0, 0)], 'opted_out');
  index.close();
  const run = await dedup(f);
  assert.equal(run.phash?.from_key, key(0, 0));
  assert.deepEqual(decisions(f), []);
  assert.equal(run.kept, 2);
  const wider = await dedup(f, { distance: 10 });
  assert.equal(wider.phash?.from_key, '');
  assert.deepEqual(
    decisions(f).map((d) => [d.key, d.duplicate_of_key, d.distance]),
    [[key(0, 2), key(0, 1), 7]],
  );
});

test('--against: samples duplicating a reference dataset are duplicates of it; the reference is untouched', async () => {
  const refs = await fixture('evalset');
  const f = await fixture('train', refs.dataRoot);
  const e = 'f0f0f0f0f0f0f0f0';
  const own = (pos: number, phash: string, sha: string) =>
    sample(0, pos, phash, { url: `https://train.example/${pos}.jpg`, sha256: sha.repeat(32) });
  record(refs, [sample(0, 0, e, { sha256: 'e0'.repeat(32) }), sample(0, 1, flip(e, [5]), { sha256: 'e1'.repeat(32) })]);
  record(f, [own(0, '0f0f0f0f0f0f0f0f', 'f0'), own(1, flip(e, [9, 40]), 'f1'), own(2, '1111111111111111', 'e1')]);
  const run = await dedup(f, { against: ['evalset'] });
  assert.equal(run.reference_samples, 2);
  assert.deepEqual(
    decisions(f).map((d) => [d.key, d.duplicate_of_dataset, d.duplicate_of_key, d.kind]),
    [
      [key(0, 1), refs.id, key(0, 0), 'phash'],
      [key(0, 2), refs.id, key(0, 1), 'sha256'],
    ],
  );
  assert.deepEqual(decisions(refs), []);
  assert.deepEqual(
    (await readDuplicatesFile(f.dir)).map((r) => r.duplicate_of_dataset),
    ['evalset', 'evalset'],
  );
  // a change in the reference recomputes everything
  record(refs, [sample(0, 2, '0f0f0f0f0f0f0f0f', { sha256: 'e2'.repeat(32) })]);
  const again = await dedup(f, { against: ['evalset'] });
  assert.equal(again.phash?.from_key, '');
  assert.equal(decisions(f).length, 3);
  await assert.rejects(dedup(f, { against: ['nope'] }), /no such dataset/);
});

// ---------------------------------------------------------------- real images

test('re-encoded and resized copies are near duplicates through the image stage; a different image is not', async () => {
  const photo = (seed: number) => {
    const r = rng(seed);
    const blobs = Array.from({ length: 14 }, () => {
      const [x, y, rad] = [r() * 400, r() * 300, 20 + r() * 70];
      const c = `rgb(${Math.floor(r() * 255)},${Math.floor(r() * 255)},${Math.floor(r() * 255)})`;
      return `<circle cx="${x}" cy="${y}" r="${rad}" fill="${c}"/>`;
    });
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><defs><linearGradient id="g"><stop offset="0" stop-color="#246"/><stop offset="1" stop-color="#eda"/></linearGradient></defs><rect width="400" height="300" fill="url(#g)"/>${blobs.join('')}</svg>`;
    return sharp(Buffer.from(svg));
  };
  const original = await photo(1).png().toBuffer();
  const variants = {
    q95: await sharp(original).jpeg({ quality: 95 }).toBuffer(),
    q60: await sharp(original).jpeg({ quality: 60 }).toBuffer(),
    w300: await sharp(original).resize(300).jpeg({ quality: 90 }).toBuffer(),
    w256: await sharp(original).resize(256).webp({ quality: 80 }).toBuffer(),
    other: await photo(2).jpeg({ quality: 95 }).toBuffer(),
  };
  const process = createImageProcessor({ ...DEFAULT_IMAGE });
  const f = await fixture();
  const rows: SampleInput[] = [];
  for (const [i, bytes] of [original, ...Object.values(variants)].entries()) {
    const res = await process(bytes);
    assert.ok(res.ok);
    rows.push(sample(0, i, res.phash, { sha256: res.sha256 }));
  }
  record(f, rows);
  await dedup(f);
  const got = decisions(f).map((d) => [d.key, d.duplicate_of_key, d.kind]);
  assert.deepEqual(
    got,
    [1, 2, 3, 4].map((i) => [key(0, i), key(0, 0), 'phash']),
    JSON.stringify(decisions(f)),
  );
});

test('--apply on fetched shards: indexed from manifests, removed from tars, manifest rows marked; reruns change nothing', async () => {
  const dataRoot = await tmp('apply');
  const datasetDir = path.join(dataRoot, 'sample');
  const file = path.join(root, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 100 }), file);
  const fetched = await runFetch({
    cfg,
    datasetDir,
    dataRoot,
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
    shards: '0-1',
  });
  assert.deepEqual(fetched.shards_failed, []);

  // the bundled sample draws few shapes and colours: there are near duplicates at a wide distance
  const listed = await runDedup({ dataRoot, datasetDir, distance: 12, log: quiet });
  assert.ok(listed.duplicates.phash > 0, JSON.stringify(listed));
  const keys = await loadDuplicateKeys(datasetDir);
  assert.equal(keys.size, listed.pending);
  const victim = (await readDuplicatesFile(datasetDir)).find((r) => r.kind === 'phash')!;

  const applied = await runDedup({ dataRoot, datasetDir, distance: 12, apply: true, log: quiet });
  assert.equal(applied.applied?.removed, keys.size);
  assert.equal(applied.pending, 0);
  assert.equal((await loadDuplicateKeys(datasetDir)).size, 0, 'dedup.arrow lists nothing once applied');
  const shard = Number(victim.key.slice(0, 5));
  const manifest = await readManifest(path.join(datasetDir, 'shards', `0000${shard}.arrow`));
  const row = manifest.find((m) => m.key === victim.key)!;
  assert.equal(row.status, 'duplicate');
  assert.equal(row.reason, victim.kind);
  assert.equal(row.error, `duplicate of ${victim.duplicate_of} (distance ${victim.distance})`);
  const inTar: string[] = [];
  for (let s = 0; s < 2; s++)
    for await (const t of readTarSamples(path.join(datasetDir, 'shards', `0000${s}.tar`))) inTar.push(t.key);
  for (const k of keys) assert.ok(!inTar.includes(k), `${k} left the tar`);
  assert.ok(inTar.includes(victim.duplicate_of));

  const before = await readFile(path.join(datasetDir, 'shards', '00000.tar'));
  const rerun = await runDedup({ dataRoot, datasetDir, distance: 12, apply: true, log: quiet });
  assert.equal(rerun.phash?.from_key, null, 'removed duplicates change no decision');
  assert.equal(rerun.applied?.removed, 0);
  assert.deepEqual(await readFile(path.join(datasetDir, 'shards', '00000.tar')), before);

  // later shards are compared with everything indexed so far
  await runFetch({ cfg, datasetDir, dataRoot, projectRoot: root, workers: 1, logFormat: 'json', shards: '2' });
  const more = await runDedup({ dataRoot, datasetDir, distance: 12, log: quiet });
  assert.equal(more.phash?.from_key?.slice(0, 5), '00002');
  assert.ok(existsSync(path.join(datasetDir, 'dedup.arrow')));

  // the same data fetched by 2 workers, last shard first, deduplicated once: the same decisions
  const other = path.join(dataRoot, 'sample-b');
  await runFetch({ cfg, datasetDir: other, dataRoot, projectRoot: root, workers: 2, logFormat: 'json', shards: '2' });
  await runFetch({ cfg, datasetDir: other, dataRoot, projectRoot: root, workers: 2, logFormat: 'json', shards: '0-1' });
  await runDedup({ dataRoot, datasetDir: other, distance: 12, log: quiet });
  const index = openIndex(dataRoot);
  const ids = index.db.prepare('SELECT id FROM datasets ORDER BY id').pluck().all() as number[];
  const all = (id: number) =>
    index.db
      .prepare('SELECT key, duplicate_of_key, kind, distance FROM dedup_decisions WHERE dataset_id = ? ORDER BY key')
      .all(id);
  assert.equal(ids.length, 2);
  assert.deepEqual(all(ids[1]), all(ids[0]));
  index.close();
});

test('muse-data dedup: summary as JSON, bad flags refused', async () => {
  const f = await fixture();
  record(f, [sample(0, 0, 'aaaaaaaaaaaaaaaa'), sample(0, 1, 'aaaaaaaaaaaaaaab')]);
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await main(['dedup', f.dir, '--data-root', f.dataRoot, '--json', '--kinds', 'phash,url']);
  } finally {
    process.stdout.write = write;
  }
  assert.equal(code, 0);
  const summary = JSON.parse(out.join(''));
  assert.equal(summary.duplicates.phash, 1);
  await assert.rejects(
    main(['dedup', f.dir, '--data-root', f.dataRoot, '--kinds', 'color']),
    /unknown dedup kind 'color'/,
  );
  await assert.rejects(main(['dedup', f.dir, '--data-root', f.dataRoot, '--phash-distance', '40']), /0\.\.15/);
});
