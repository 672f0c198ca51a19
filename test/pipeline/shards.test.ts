import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { ShardTarWriter } from '../../src/shards/tar-writer.ts';
import { readTarSamples, splitMemberName } from '../../src/shards/tar-reader.ts';
import { manifestRow, readManifest, writeManifest } from '../../src/dataset/manifest.ts';
import { sampleKey, positionDigits } from '../../src/dataset/names.ts';
import { summarize } from '../../src/dataset/stats.ts';
import type { SampleOutcome } from '../../src/shards/outcome.ts';

function outcome(i: number, status: SampleOutcome['status'], withImage: boolean): SampleOutcome {
  return {
    key: sampleKey(3, i, 100),
    row: 300 + i,
    url: `http://example.com/${i}.jpg`,
    caption: `caption ${i} é`,
    meta: { similarity: 0.31, SAMPLE_ID: 123456789012345n },
    status,
    reason: status === 'ok' ? null : 'http_404',
    error: status === 'ok' ? null : 'HTTP 404 Not Found',
    image: withImage ? { data: Buffer.from(`jpegbytes${i}`), ext: 'jpg', width: 64, height: 64 } : undefined,
    originalWidth: withImage ? 500 : undefined,
    originalHeight: withImage ? 400 : undefined,
    sha256: withImage ? 'ab'.repeat(32) : undefined,
    phash: withImage ? '0123456789abcdef' : undefined,
    cls: i === 0 ? 7 : undefined,
  };
}

test('keys are 5-digit shard + position, 4 digits up to 10,000 per shard', () => {
  assert.equal(sampleKey(42, 17, 10000), '000420017');
  assert.equal(sampleKey(0, 5, 100), '000000005');
  assert.equal(positionDigits(10000), 4);
  assert.equal(positionDigits(100000), 5);
  assert.equal(sampleKey(1, 12345, 100000), '0000112345');
});

test('webdataset key split: up to the first dot of the last path component', () => {
  assert.deepEqual(splitMemberName('000010005.jpg'), { key: '000010005', ext: 'jpg' });
  assert.deepEqual(splitMemberName('dir.v2/000010005.seg.JPG'), { key: 'dir.v2/000010005', ext: 'seg.jpg' });
});

test('tar writer: samples adjacent, members in sorted extension order, failed rows absent, bytes reproducible', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-shards-'));
  const outcomes = [
    outcome(0, 'ok', true),
    outcome(1, 'failed', false),
    outcome(2, 'fallback', true),
    outcome(3, 'filtered', false),
  ];
  for (const name of ['a.tar', 'b.tar']) {
    const w = await ShardTarWriter.create(path.join(dir, name));
    for (const o of outcomes) await w.add(o);
    await w.finish();
  }
  assert.deepEqual(await readFile(path.join(dir, 'a.tar')), await readFile(path.join(dir, 'b.tar')));
  assert.deepEqual((await readdir(dir)).sort(), ['a.tar', 'b.tar'], 'no temporary files left');

  const samples = [];
  for await (const s of readTarSamples(path.join(dir, 'a.tar'))) samples.push(s);
  assert.deepEqual(
    samples.map((s) => s.key),
    ['000030000', '000030002'],
  );
  assert.deepEqual(Object.keys(samples[0].files), ['cls', 'jpg', 'json', 'txt']);
  assert.deepEqual(Object.keys(samples[1].files), ['jpg', 'json', 'txt']);
  assert.equal(samples[0].files.cls.toString(), '7');
  assert.equal(samples[0].files.txt.toString(), 'caption 0 é');
  const json = JSON.parse(samples[1].files.json.toString());
  assert.equal(json.key, '000030002');
  assert.equal(json.status, 'fallback');
  assert.equal(json.error, 'HTTP 404 Not Found');
  assert.equal(json.original_width, 500);
  assert.equal(json.source.SAMPLE_ID, 123456789012345);
});

test('manifest: one row per input row with every status, readable as a plain Arrow table', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-manifest-'));
  const outcomes = [
    outcome(0, 'ok', true),
    outcome(1, 'failed', false),
    outcome(2, 'fallback', true),
    outcome(3, 'filtered', false),
  ];
  const file = path.join(dir, '00003.arrow');
  await writeManifest(file, outcomes.map(manifestRow));
  const table = tableFromIPC(await readFile(file));
  assert.equal(table.numRows, 4);
  assert.deepEqual(table.schema.fields.map((f) => f.name).slice(0, 7), [
    'key',
    'row',
    'url',
    'caption',
    'status',
    'reason',
    'error',
  ]);
  const rows = await readManifest(file);
  assert.deepEqual(
    rows.map((r) => r.status),
    ['ok', 'failed', 'fallback', 'filtered'],
  );
  assert.equal(rows[1].reason, 'http_404');
  assert.equal(rows[1].width, null);
  assert.equal(rows[0].row, 300);
  assert.equal(JSON.parse(rows[0].meta!).SAMPLE_ID, 123456789012345);
  const s = summarize(rows);
  assert.equal(s.count, 4);
  assert.equal(s.written, 2);
  assert.deepEqual(s.reasons, { failed: { http_404: 1 }, fallback: { http_404: 1 }, filtered: { http_404: 1 } });
});
