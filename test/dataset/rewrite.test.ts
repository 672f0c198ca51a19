/**
 * rewriteShard: removal of samples from a finished shard (tar, manifest, stats, token caches), idempotence, and
 * crash at every step followed by a rerun.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, readdir, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pack as tarPack } from 'tar-stream';
import {
  Field,
  FixedSizeList,
  Float16,
  Int16,
  List,
  Schema,
  Table,
  Utf8,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
import { ShardTarWriter } from '../../src/shards/tar-writer.ts';
import { manifestRow, readManifest, writeManifest } from '../../src/dataset/manifest.ts';
import { sampleKey, shardPaths } from '../../src/dataset/names.ts';
import { readStats, summarize, writeStats, type ShardStats } from '../../src/dataset/stats.ts';
import type { SampleOutcome } from '../../src/shards/outcome.ts';
import { journalPath, pendingRewrites, rewriteShard, type Removal } from '../../src/dataset/rewrite.ts';
import { filterTar } from '../../src/shards/tar-filter.ts';

const SHARD = 2;
const N = 10;
const key = (i: number) => sampleKey(SHARD, i, 100);

function outcomes(): SampleOutcome[] {
  return Array.from({ length: N }, (_, i) => {
    const status: SampleOutcome['status'] = i === 3 ? 'failed' : i === 5 ? 'filtered' : i === 7 ? 'fallback' : 'ok';
    const img = status === 'ok' || status === 'fallback';
    return {
      key: key(i),
      row: SHARD * 100 + i,
      url: `http://example.com/${i}.jpg`,
      caption: `caption ${i}`,
      meta: { similarity: 0.3 },
      status,
      reason: status === 'ok' ? null : 'http_404',
      error: status === 'ok' ? null : 'HTTP 404',
      image: img ? { data: Buffer.alloc(700 + i * 131, i), ext: 'jpg', width: 64, height: 64 } : undefined,
      originalWidth: img ? 100 : undefined,
      originalHeight: img ? 80 : undefined,
      bytes: img ? 1000 + i : undefined,
      sha256: img ? String(i).repeat(64) : undefined,
      phash: img ? '0123456789abcdef' : undefined,
      cls: i === 1 ? 4 : undefined,
    };
  });
}

async function writeTar(file: string, os: SampleOutcome[]): Promise<number> {
  const w = await ShardTarWriter.create(file);
  for (const o of os) await w.add(o);
  return w.finish();
}

const tokenTable = (keys: string[]) => {
  const t = new Table({
    key: vectorFromArray(keys, new Utf8()),
    tokens: vectorFromArray(
      keys.map((k) => [Number(k.slice(-2)), 1, 2, 3]),
      new FixedSizeList(4, new Field('item', new Int16())),
    ),
  });
  return new Table(new Schema(t.schema.fields, new Map([['vq', 'test-vq']])), t.batches);
};
const textTable = (keys: string[]) => {
  const t = new Table({
    key: vectorFromArray(keys, new Utf8()),
    hidden: vectorFromArray(
      keys.map((k) => Array.from({ length: 1 + (Number(k.slice(-1)) % 3) }, (_, j) => j * 0.5)),
      new List(new Field('item', new Float16())),
    ),
  });
  return new Table(new Schema(t.schema.fields, new Map([['encoder', 't5-test']])), t.batches);
};
const imageKeys = () =>
  outcomes()
    .filter((o) => o.image)
    .map((o) => o.key);

/** A finished shard as fetch leaves it, plus token and text caches (the text one in two record batches). */
async function makeShard(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-rewrite-'));
  const p = shardPaths(dir, SHARD);
  const bytes = await writeTar(p.tar, outcomes());
  const rows = outcomes().map(manifestRow);
  await writeManifest(p.manifest, rows);
  const stats: ShardStats = {
    shard: SHARD,
    ...summarize(rows),
    bytes_written: bytes,
    start_time: '2024-01-01T00:00:00.000Z',
    end_time: '2024-01-01T00:00:01.000Z',
    duration_s: 1,
    timings_ms: { filter_ms: 1, download_ms: 2, image_ms: 3, write_ms: 4 },
  };
  await writeStats(p.stats, stats);
  const keys = imageKeys();
  await mkdir(path.join(dir, 'tokens', 'vq-a'), { recursive: true });
  await writeFile(path.join(dir, 'tokens', 'vq-a', '00002.arrow'), tableToIPC(tokenTable(keys), 'file'));
  await writeFile(path.join(dir, 'tokens', 'vq-a', '00003.arrow'), tableToIPC(tokenTable(['000030000']), 'file'));
  await mkdir(path.join(dir, 'text', 't5-a'), { recursive: true });
  const text = textTable(keys);
  await writeFile(
    path.join(dir, 'text', 't5-a', '00002.arrow'),
    tableToIPC(text.slice(0, 3).concat(text.slice(3)), 'file'),
  );
  return dir;
}

const removal = (keys: string[], r: Removal = { status: 'opted_out', reason: 'optout_index' }) =>
  new Map(keys.map((k) => [k, r]));

async function snapshot(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) await walk(f);
      else out[path.relative(dir, f)] = await readFile(f);
    }
  };
  await walk(dir);
  return out;
}

/** Checks the shard against what it must be with `gone` removed. */
async function assertRemoved(dir: string, gone: Map<string, Removal>) {
  const p = shardPaths(dir, SHARD);
  const keep = outcomes().filter((o) => !gone.has(o.key));
  // The tar is exactly what the writer makes from the remaining samples: other members byte-identical.
  const expectedTar = path.join(dir, 'expected.tar');
  const bytes = await writeTar(expectedTar, keep);
  assert.deepEqual(await readFile(p.tar), await readFile(expectedTar));
  await rm(expectedTar);

  const rows = await readManifest(p.manifest);
  const orig = outcomes().map(manifestRow);
  assert.equal(rows.length, orig.length, 'manifest keeps every row');
  for (let i = 0; i < rows.length; i++) {
    const g = gone.get(orig[i].key);
    const wasInTar = orig[i].status === 'ok' || orig[i].status === 'fallback';
    if (g && wasInTar)
      assert.deepEqual(rows[i], { ...orig[i], status: g.status, reason: g.reason, error: g.error ?? null });
    else assert.deepEqual(rows[i], orig[i]);
  }
  const stats = (await readStats(p.stats))!;
  assert.deepEqual(stats.status, summarize(rows).status);
  assert.equal(stats.written, keep.filter((o) => o.image).length);
  assert.equal(stats.bytes_written, bytes);
  assert.deepEqual(stats.timings_ms, { filter_ms: 1, download_ms: 2, image_ms: 3, write_ms: 4 });
  assert.equal(stats.start_time, '2024-01-01T00:00:00.000Z');

  const left = imageKeys().filter((k) => !gone.has(k));
  const tok = tableFromIPC(await readFile(path.join(dir, 'tokens', 'vq-a', '00002.arrow')));
  assert.deepEqual(
    tok.toArray().map((r) => [r.key, [...r.tokens]]),
    left.map((k) => [k, [Number(k.slice(-2)), 1, 2, 3]]),
  );
  assert.equal(tok.schema.metadata.get('vq'), 'test-vq');
  const text = tableFromIPC(await readFile(path.join(dir, 'text', 't5-a', '00002.arrow')));
  assert.deepEqual(
    text.toArray().map((r) => r.key),
    left,
  );
  assert.deepEqual(
    text.toArray().map((r) => [...r.hidden]),
    left.map((k) => Array.from({ length: 1 + (Number(k.slice(-1)) % 3) }, (_, j) => j * 0.5)),
  );
  assert.equal(text.schema.metadata.get('encoder'), 't5-test');
  assert.equal(String(text.schema.fields[1].type), String(textTable(['x']).schema.fields[1].type));
  assert.ok(!existsSync(journalPath(dir, SHARD)), 'journal removed');
  const leftovers = Object.keys(await snapshot(dir)).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(leftovers, []);
}

test('rewriteShard removes samples from tar, manifest, stats and caches; the rest is unchanged', async () => {
  const dir = await makeShard();
  const other = await readFile(path.join(dir, 'tokens', 'vq-a', '00003.arrow'));
  // 0004 ok, 0007 fallback, 0003 failed (not in the tar: row left as it is), 0099 unknown.
  const gone = removal([key(4), key(7), key(3), key(99)], {
    status: 'opted_out',
    reason: 'optout_index',
    error: 'opted out by URL',
  });
  const r = await rewriteShard(dir, SHARD, gone);
  assert.deepEqual(r, { removed: 2, cacheFilesRewritten: 2 });
  await assertRemoved(dir, gone);
  assert.deepEqual(
    await readFile(path.join(dir, 'tokens', 'vq-a', '00003.arrow')),
    other,
    "another shard's cache untouched",
  );
});

test('rewriteShard is idempotent: a second call writes nothing', async () => {
  const dir = await makeShard();
  const gone = removal([key(0), key(9)], { status: 'duplicate', reason: 'sha256' });
  await rewriteShard(dir, SHARD, gone);
  const before = await snapshot(dir);
  assert.deepEqual(await rewriteShard(dir, SHARD, gone), { removed: 0, cacheFilesRewritten: 0 });
  assert.deepEqual(await snapshot(dir), before);
  // Removing more later keeps the earlier removals.
  await rewriteShard(dir, SHARD, removal([key(1)], { status: 'duplicate', reason: 'sha256' }));
  await assertRemoved(dir, new Map([...gone, ...removal([key(1)], { status: 'duplicate', reason: 'sha256' })]));
});

test('rewriteShard removing every sample leaves an empty tar and empty caches with their schema', async () => {
  const dir = await makeShard();
  const gone = removal(outcomes().map((o) => o.key));
  await rewriteShard(dir, SHARD, gone);
  await assertRemoved(dir, gone);
});

test('a crash after any step, then a rerun (even with another key set), gives the complete result', async () => {
  const gone = removal([key(2), key(7), key(8)]);
  for (const crashAt of ['journal', 'caches', 'tar', 'manifest', 'stats']) {
    for (const rerunWith of [gone, new Map<string, Removal>()]) {
      const dir = await makeShard();
      await assert.rejects(
        rewriteShard(dir, SHARD, gone, {
          afterStep: (s) => {
            if (s === crashAt) throw new Error('simulated crash');
          },
        }),
        /simulated crash/,
      );
      assert.deepEqual(await pendingRewrites(dir), [SHARD], `journal left after a crash at ${crashAt}`);
      await rewriteShard(dir, SHARD, rerunWith);
      await assertRemoved(dir, gone);
      assert.deepEqual(await pendingRewrites(dir), []);
    }
  }
});

test('an incomplete shard (no stats file) is skipped with a message', async () => {
  const dir = await makeShard();
  await rm(shardPaths(dir, SHARD).stats);
  const before = await snapshot(dir);
  const logs: string[] = [];
  const r = await rewriteShard(dir, SHARD, removal([key(0)]), { log: (m) => logs.push(m) });
  assert.equal(r.removed, 0);
  assert.match(r.skipped ?? '', /incomplete/);
  assert.match(logs.join('\n'), /00002.*incomplete/);
  assert.deepEqual(await snapshot(dir), before);
});

test('filterTar follows pax and GNU long names to the member they describe', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-tarfilter-'));
  const file = path.join(dir, 'long.tar');
  const long = 'd'.repeat(120) + '/000000001'; // ustar prefix field
  const pax = 'é'.repeat(70); // non-ASCII and > 100 bytes: a pax header
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((r) => p.on('end', () => r()));
  const add = (name: string, body: string) =>
    new Promise<void>((res, rej) => p.entry({ name, mtime: new Date(0) }, body, (e) => (e ? rej(e) : res())));
  await add('000000000.txt', 'a');
  await add(`${long}.txt`, 'b');
  await add(`${long}.json`, '{}');
  await add(`${pax}.txt`, 'p');
  await add('000000002.txt', 'c');
  p.finalize();
  await ended;
  await writeFile(file, Buffer.concat(chunks));
  const r = await filterTar(file, new Set([long, pax]));
  assert.deepEqual([...r.removedKeys], [long, pax]);
  assert.equal(r.keptFileBytes, 2);
  const { extract } = await import('tar-stream');
  const ex = extract();
  const names: string[] = [];
  ex.end(await readFile(file));
  for await (const e of ex) {
    names.push(e.header.name);
    e.resume();
  }
  assert.deepEqual(names, ['000000000.txt', '000000002.txt']);
});

test('filterTar names the file when the tar is corrupt', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-tarfilter-'));
  const file = path.join(dir, 'bad.tar');
  await writeFile(file, Buffer.alloc(1024, 7));
  await assert.rejects(filterTar(file, new Set(['x'])), /bad\.tar: corrupt tar header at byte 0/);
});
