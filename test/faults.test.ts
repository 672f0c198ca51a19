/**
 * Faults underneath the commands: damaged files of the formats muse reads, and what each loader says. Each case
 * damages one file the way a disk, a copy or a person does (same-size corruption, truncation, emptiness) and
 * checks the command names the file and stops; a new format or loader gets a case here.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onBackend } from './helpers/backend.ts';
import { writeTinyCheckpoint } from './helpers/tiny-checkpoint.ts';
import { runInProcess } from './helpers/cli-in-process.ts';
import { CheckpointStore } from '../src/train/core/checkpoints.ts';
import { loadCheckpoint } from '../src/sample/load.ts';

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
  const r = await runInProcess('muse-sample', ['--checkpoint', saved, '--prompt', 'a red circle', '--out', path.join(tmp, 'out'), '--backend', 'wasm']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`checkpoint ${saved} is corrupt: ${weights}: sha256 mismatch`));
  await flipByte(weights); // restored
});
