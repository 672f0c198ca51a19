/**
 * Point look-ups straight from the sample index runs (src/index-db/run-lookup.ts): they answer exactly what a
 * DuckDB query over the same files answers, read only the row groups whose key range can hold the key, answer
 * warm look-ups without reading the file, and never answer from the cache of a file replaced on disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sampleUrlHash, type SampleInput } from '../../src/index-db/db.ts';
import {
  COMPACT_ROW_GROUP,
  connect,
  encodeRun,
  runsBySha256,
  runsByUrlHash,
  writeCompacted,
  writeRun,
  type RunSet,
} from '../../src/index-db/sample-runs.ts';
import { RunChangedError, RunLookup, runRef, type RunRow } from '../../src/index-db/run-lookup.ts';

const hex = (s: string) => createHash('sha256').update(s).digest('hex');

/** `n` rows of one shard; every 7th row repeats an earlier URL and every 11th an earlier image; some lack both. */
function rows(shard: number, n: number): Array<Omit<SampleInput, 'shard'>> {
  return Array.from({ length: n }, (_, i) => {
    const u = i % 7 === 6 ? i - 3 : i;
    const img = i % 11 === 10 ? i - 5 : i;
    const failed = i % 10 === 9;
    return {
      key: `${String(shard).padStart(5, '0')}${String(i).padStart(5, '0')}`,
      url: `https://img${u % 13}.example.com/photos/${shard}/${u}.jpg`,
      sha256: failed ? null : hex(`${shard}/${img}`),
      phash: failed ? null : hex(`p${i}`).slice(0, 16),
      caption: `caption ${i}`,
      status: failed ? 'failed' : 'ok',
    };
  });
}

const u64 = (b: Buffer) => b.readBigUInt64BE(0);
const asHits = (rs: RunRow[]) =>
  rs
    .map((r) => ({
      datasetId: r.datasetId,
      key: r.key,
      shard: r.shard,
      status: r.status,
      sha256: r.sha256?.toString('hex') ?? null,
      phash: r.phash?.toString(16).padStart(16, '0') ?? null,
    }))
    .sort((a, b) => a.datasetId - b.datasetId || (a.key < b.key ? -1 : 1));

test('look-ups over shard runs and a compacted run answer what DuckDB answers, reading only the row groups that can hold the key', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-run-lookup-'));
  const con = await connect();
  try {
    const shardFiles = [0, 1, 2].map((s) => path.join(dir, `${s}.index.parquet`));
    // Shard 2 failed whole: no images, so the by-image compacted run ends in row groups of nulls only.
    const data = [
      rows(0, 3000),
      rows(1, 3000),
      rows(2, 5000).map((r) => ({ ...r, sha256: null, phash: null, status: 'failed' })),
    ];
    for (const s of [0, 1, 2]) await writeRun(shardFiles[s], data[s], s);
    // The shard job hands on the URL hashes it computed for its opt-out test: the same file results.
    assert.deepEqual(
      encodeRun(data[1], 1, (r) => sampleUrlHash(r.url)),
      encodeRun(data[1], 1),
    );
    assert.notDeepEqual(
      encodeRun(data[1], 1, () => sampleUrlHash('https://other.example/')),
      encodeRun(data[1], 1),
    );
    const shardSet: RunSet = { shardRuns: [{ datasetId: 7, files: shardFiles }], compacted: [], stale: [] };
    const byUrl = path.join(dir, 'c.url.parquet');
    const bySha = path.join(dir, 'c.sha.parquet');
    await writeCompacted(con, shardSet, byUrl, bySha);
    const compactSet: RunSet = { shardRuns: [], compacted: [{ byUrl, bySha }], stale: [] };

    const lookup = new RunLookup();
    const shardRefs = await Promise.all(shardFiles.map((f) => runRef(f, 7)));
    const urlRefs = [await runRef(byUrl)];
    const shaRefs = [await runRef(bySha)];
    const all = data.flat();
    // Probes: URLs and images held once and twice, a URL whose hash has the top bit set, and absent keys.
    const probes = [0, 3, 6, 10, 5, 1234, 2999].map((i) => all[i]).concat(data[1].slice(100, 110));
    assert.ok(
      probes.some((p) => u64(sampleUrlHash(p.url)) >= 1n << 63n),
      'a probe hash has its top bit set',
    );
    let multi = 0;
    for (const p of probes) {
      const h = sampleUrlHash(p.url);
      const want = await runsByUrlHash(con, shardSet, h);
      assert.ok(want.length >= 1);
      if (want.length > 1) multi++;
      assert.deepEqual(asHits(await lookup.find(shardRefs, 'url_hash', u64(h))), want, `shard runs, ${p.url}`);
      assert.deepEqual(
        asHits(await lookup.find(urlRefs, 'url_hash', u64(h))),
        await runsByUrlHash(con, compactSet, h),
        `compacted, ${p.url}`,
      );
      if (!p.sha256) continue;
      const b = Buffer.from(p.sha256, 'hex');
      const same = (r: RunRow) => r.sha256 !== null && r.sha256.equals(b);
      const wantSha = await runsBySha256(con, shardSet, b);
      assert.ok(wantSha.length >= 1);
      assert.deepEqual(
        asHits(await lookup.find(shardRefs, 'sha_hi', u64(b), same)),
        wantSha,
        `shard runs by image, ${p.key}`,
      );
      assert.deepEqual(
        asHits(await lookup.find(shaRefs, 'sha_hi', u64(b), same)),
        wantSha,
        `compacted by image, ${p.key}`,
      );
    }
    assert.ok(multi > 0, 'some probe URL is held by several samples');
    const absent = sampleUrlHash('https://nowhere.example.com/x.jpg');
    assert.deepEqual(await lookup.find([...urlRefs, ...shardRefs], 'url_hash', u64(absent)), []);

    // Pruning: the compacted run has several row groups; a cold look-up decodes the key column of the one
    // group whose range holds the key, plus its other columns for the hit; warm, nothing is read.
    assert.ok(11_000 / COMPACT_ROW_GROUP > 2, 'the compacted run has more than two row groups');
    const cold = new RunLookup();
    const h = u64(sampleUrlHash(all[4321].url));
    assert.equal((await cold.find(urlRefs, 'url_hash', h)).length, 1);
    assert.equal(cold.groupReads, 2);
    assert.equal((await cold.find(urlRefs, 'url_hash', h)).length, 1);
    assert.equal(cold.groupReads, 2, 'the warm look-up read nothing');
    // By image: the row groups holding only samples without an image are never read.
    const b = Buffer.from(all[100].sha256!, 'hex');
    const coldSha = new RunLookup();
    assert.equal(
      (await coldSha.find(shaRefs, 'sha_hi', u64(b), (r) => r.sha256 !== null && r.sha256.equals(b))).length,
      1,
    );
    assert.equal(coldSha.groupReads, 2);
    // A miss inside a group's range reads its key column only.
    const miss = new RunLookup();
    assert.deepEqual(await miss.find(urlRefs, 'url_hash', h + 1n), []);
    assert.equal(miss.groupReads, 1);
  } finally {
    con.closeSync();
    await rm(dir, { recursive: true, force: true });
  }
});

test("a run replaced on disk is never answered from the old file's cache", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-run-lookup-'));
  try {
    const file = path.join(dir, '0.index.parquet');
    const before = rows(0, 50);
    await writeRun(file, before, 0);
    const lookup = new RunLookup();
    const old = await runRef(file, 1);
    const h = u64(sampleUrlHash(before[0].url));
    assert.equal((await lookup.find([old], 'url_hash', h))[0].status, 'ok');
    // An opt-out rewrite marks the sample and writes the run again (tmp + rename: a new inode).
    await writeRun(
      file,
      before.map((r, i) => (i === 0 ? { ...r, status: 'optout' } : r)),
      0,
    );
    assert.equal(
      (await lookup.find([old], 'url_hash', h))[0].status,
      'ok',
      'what the old ref cached stays the old version',
    );
    // Anything not cached yet is read from disk, checked against the ref's identity first.
    await assert.rejects(new RunLookup().find([old], 'url_hash', h), RunChangedError);
    assert.equal((await lookup.find([await runRef(file, 1)], 'url_hash', h))[0].status, 'optout');
    await rm(file);
    await assert.rejects(new RunLookup().find([old], 'url_hash', h), RunChangedError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
