/**
 * Faults underneath the commands: damaged files of the formats muse reads, and what each loader says. Each case
 * damages one file the way a disk, a copy or a person does (same-size corruption, truncation, emptiness) and
 * checks the command names the file and stops; a new format or loader gets a case here.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, open, symlink, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend } from '../helpers/backend.ts';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { runInProcess } from '../helpers/cli-in-process.ts';
import { CheckpointStore } from '../../src/run-folder/index.ts';
import { loadCheckpoint } from '../../src/sample/load.ts';
import { copyDataRoot, fetchSample } from '../helpers/serve-fixture.ts';
import { openIndex } from '../../src/index-db/db.ts';
import { buildServer } from '../../src/server/app.ts';
import { readManifest } from '../../src/dataset/manifest.ts';
import { ShardTarWriter } from '../../src/shards/tar-writer.ts';
import { openOptoutSnapshot, writeOptoutSnapshot } from '../../src/queue/optout-snapshot.ts';
import { OptoutStore } from '../../src/optout/store.ts';
import { FetchProgress } from '../../src/pipeline/progress.ts';
import { writeFileAtomic } from '../../src/util/atomic.ts';
import { filterTar } from '../../src/shards/tar-filter.ts';
import { readTarSamples } from '../../src/shards/tar-reader.ts';

/** Runs `fn` with process.stderr captured; returns what was written. */
async function captureStderr(fn: () => Promise<void>): Promise<string> {
  const chunks: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((c: string | Uint8Array) => (chunks.push(String(c)), true)) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = orig;
  }
  return chunks.join('');
}

let tmp: string;
/** A checkpoint as muse-train saves it (trainer_state.json records every file's size and sha256). */
let saved: string;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'muse-faults-'));
  let tiny = '';
  await onBackend('wasm', async () => {
    tiny = await writeTinyCheckpoint(path.join(tmp, 'tiny'));
  });
  const store = new CheckpointStore(path.join(tmp, 'run', 'checkpoints'), { keepLast: 2 });
  saved = await store.save(3, (dir) => cp(tiny, dir, { recursive: true }), {});
});

/** Flips one byte in the middle of `file`: same size, other content. */
async function flipByte(file: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const { size } = await fh.stat();
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, Math.floor(size / 2));
    b[0] ^= 0xff;
    await fh.write(b, 0, 1, Math.floor(size / 2));
  } finally {
    await fh.close();
  }
}

test('a checkpoint with a same-size corrupted weights file: muse-sample and the shared loader refuse, naming the file', async () => {
  // intact: loads (the loader the playground and muse-eval run use too)
  await onBackend('wasm', async () => (await loadCheckpoint(saved)).dispose());
  const weights = path.join(saved, 'ema', 'model.safetensors');
  await flipByte(weights);
  await assert.rejects(loadCheckpoint(saved), (e: Error) => e.message.includes(`${weights}: sha256 mismatch`));
  // a run folder resolves to the same checkpoint, with the same check
  await assert.rejects(loadCheckpoint(path.join(tmp, 'run')), /sha256 mismatch/);
  const r = await runInProcess('muse-sample', [
    '--checkpoint',
    saved,
    '--prompt',
    'a red circle',
    '--out',
    path.join(tmp, 'out'),
    '--backend',
    'wasm',
  ]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`checkpoint ${saved} is corrupt: ${weights}: sha256 mismatch`));
  await flipByte(weights); // restored
});

test('serve with a damaged shard manifest and a truncated shard tar: the rest is browsable, the damage is named and logged', async () => {
  const f = await fetchSample('faults-serve');
  const { dataRoot, dataset } = await copyDataRoot(f.dataRoot, 'faults-serve');
  const shard0 = await readManifest(path.join(dataset, 'shards', '00000.arrow'));
  await writeFile(path.join(dataset, 'shards', '00001.arrow'), 'not arrow at all');
  await truncate(path.join(dataset, 'shards', '00000.tar'), 612); // the first member's data is cut short
  const responses: Record<string, { statusCode: number; body: string }> = {};
  const ok = shard0.find((r) => r.status === 'ok')!;
  const log = await captureStderr(async () => {
    const app = await buildServer({ dataRoot });
    for (const url of [
      '/api/datasets/sample',
      '/api/datasets/sample/samples?per=200',
      `/api/datasets/sample/samples/${ok.key}`,
      `/thumbs/sample/${ok.key}.webp`,
      '/datasets/sample',
    ]) {
      responses[url] = await app.inject(url);
    }
    await app.close();
  });
  const summary = JSON.parse(responses['/api/datasets/sample'].body);
  assert.equal(responses['/api/datasets/sample'].statusCode, 200);
  assert.match(summary.damaged[0], /shards\/00001\.arrow: not a readable shard manifest/);
  const grid = JSON.parse(responses['/api/datasets/sample/samples?per=200'].body);
  assert.equal(grid.total, shard0.length, 'the readable shard is listed');
  const detail = responses[`/api/datasets/sample/samples/${ok.key}`];
  assert.equal(detail.statusCode, 200);
  assert.match(JSON.parse(detail.body).damaged, /shard file sample\/shards\/00000\.tar is damaged/);
  const thumb = responses[`/thumbs/sample/${ok.key}.webp`];
  assert.equal(thumb.statusCode, 500);
  assert.match(JSON.parse(thumb.body).error, /shard file sample\/shards\/00000\.tar is damaged: truncated tar/);
  assert.match(responses['/datasets/sample'].body, /Shards left out/);
  // stderr: one JSON line per 5xx with its cause, and one for the damaged manifest
  const lines = log
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(
    lines.some(
      (l) =>
        l.event === 'error' &&
        l.status === 500 &&
        l.url === `/thumbs/sample/${ok.key}.webp` &&
        /truncated tar/.test(l.error),
    ),
    log,
  );
  assert.ok(
    lines.some((l) => l.event === 'damaged_shard' && /00001\.arrow/.test(l.error)),
    log,
  );
});

test('removing many samples from one shard tar emits no MaxListenersExceededWarning (optout apply, dedup --apply)', async () => {
  const file = path.join(tmp, 'many.tar');
  const w = await ShardTarWriter.create(file);
  const keys = Array.from({ length: 40 }, (_, i) => String(i).padStart(9, '0'));
  for (const [i, key] of keys.entries()) {
    await w.add({
      key,
      row: i,
      url: `http://example.com/${i}.jpg`,
      caption: `c ${i}`,
      meta: {},
      status: 'ok',
      reason: null,
      error: null,
      image: { data: Buffer.alloc(600 + i, i), ext: 'jpg', width: 8, height: 8 },
    });
  }
  await w.finish();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const gone = new Set(keys.filter((_, i) => i % 2 === 1)); // 20 ranges kept between 20 removals
    const r = await filterTar(file, gone);
    assert.equal(r.removedKeys.size, 20);
    await new Promise((res) => setImmediate(res)); // warnings are emitted on the next tick
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings, []);
  const left: string[] = [];
  for await (const t of readTarSamples(file)) left.push(t.key);
  assert.deepEqual(
    left,
    keys.filter((_, i) => i % 2 === 0),
  );
});

test('a truncated shard tar: reading it (tokenize, the VQGAN loader) names the file', async () => {
  const file = path.join(tmp, 'cut.tar');
  const w = await ShardTarWriter.create(file);
  for (let i = 0; i < 4; i++) {
    await w.add({
      key: String(i).padStart(9, '0'),
      row: i,
      url: 'http://example.com/x.jpg',
      caption: 'c',
      meta: {},
      status: 'ok',
      reason: null,
      error: null,
      image: { data: Buffer.alloc(900, i), ext: 'jpg', width: 8, height: 8 },
    });
  }
  await w.finish();
  await truncate(file, 1500);
  await assert.rejects(
    async () => {
      for await (const s of readTarSamples(file)) void s;
    },
    (e: Error) => e.message.startsWith(`${file}: damaged shard tar (`) && /refetch the shard/.test(e.message),
  );
});

test('a tampered opt-out snapshot is detected by the worker, and the next run replaces it', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'muse-faults-snap-'));
  const index = openIndex(root);
  new OptoutStore(index).addUrls(['http://a.example/x.jpg']);
  index.close();
  const dataset = path.join(root, 'ds');
  const ref = await writeOptoutSnapshot(root, dataset);
  await flipByte(ref.file);
  await assert.rejects(openOptoutSnapshot(ref), /does not match the job's/);
  const again = await writeOptoutSnapshot(root, dataset); // what a rerun of fetch --queue does first
  assert.equal(again.file, ref.file);
  const snap = await openOptoutSnapshot(again);
  try {
    assert.equal(snap.urlOptedOut('http://a.example/x.jpg'), true);
  } finally {
    snap.close();
  }
});

test('progress with rows counted twice (a queue shard retried after its worker died) stays at 100% with ETA 0', () => {
  const chunks: string[] = [];
  const out = { isTTY: false, write: (c: string) => (chunks.push(c), true) } as unknown as NodeJS.WriteStream;
  const p = new FetchProgress(100, 1, 'plain', out, 0);
  p.row('ok', 60);
  p.row('ok', 47); // a retried job's rows, partly counted before
  p.finish();
  const last = chunks.join('').trim().split('\n').at(-1)!;
  assert.match(last, /100% 107\/100 rows/);
  assert.doesNotMatch(last, /ETA -|1(0[1-9]|[1-9][0-9])%/);
});

test(
  'disk full while a shard tar is written: an error naming the file (no uncaught ENOSPC), nothing left in place',
  { skip: !existsSync('/dev/full') && 'no /dev/full here' },
  async () => {
    const file = path.join(tmp, 'full', '00000.tar');
    await mkdir(path.dirname(file), { recursive: true });
    await symlink('/dev/full', `${file}.tmp`); // every write to the shard's temporary file fails with ENOSPC
    const w = await ShardTarWriter.create(file);
    await assert.rejects(
      async () => {
        for (let i = 0; i < 40; i++) {
          await w.add({
            key: String(i).padStart(9, '0'),
            row: i,
            url: 'http://example.com/x.jpg',
            caption: 'c',
            meta: {},
            status: 'ok',
            reason: null,
            error: null,
            image: { data: Buffer.alloc(100_000, 1), ext: 'jpg', width: 8, height: 8 },
          });
        }
        await w.finish();
      },
      (e: Error) => e.message.startsWith(`${file}: disk full (ENOSPC`) && /rerun/.test(e.message),
    );
    assert.ok(!existsSync(file), 'no partial shard in place');
  },
);

test(
  'disk full while a cache or manifest file is written (tokenize, apply): the error names the file, the old one is kept',
  { skip: !existsSync('/dev/full') && 'no /dev/full here' },
  async () => {
    const file = path.join(tmp, 'full2', '00000.arrow');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'old');
    await symlink('/dev/full', `${file}.tmp`);
    await assert.rejects(
      writeFileAtomic(file, Buffer.alloc(100_000, 1)),
      (e: Error & { code?: string }) => e.message.startsWith(`${file}: disk full (ENOSPC`) && e.code === 'ENOSPC',
    );
    assert.equal(await (await import('node:fs/promises')).readFile(file, 'utf8'), 'old');
  },
);
