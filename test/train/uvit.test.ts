// The MUSE stages with architecture: uvit (MaskGiTUViT, pooled text + micro-conditions by AdaLN) on small
// synthetic token caches with a pooled vector: sampling a trained checkpoint. Exact resume and overfitting, for
// every variant: muse-variants.test.ts.
import { fixturePath } from '../helpers/fixtures.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend } from '../helpers/backend.ts';
import { trainMuse, sampleTwiceAlike } from '../helpers/muse-training.ts';
import { UVIT } from '../helpers/muse-variants.ts';
import { writeTinyVqgan } from '../helpers/tiny-checkpoint.ts';

const FIX = fixturePath();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-train-uvit-'));

const dataset = (name: string, shards: Record<number, number>) => UVIT.dataset(tmp, name, shards);
const train = (dir: string, runDir: string, sets: string[]) => trainMuse(dir, runDir, [...UVIT.sets, ...sets]);

test('uvit: a trained checkpoint samples through muse-sample (pooled CLIP vector, guidance)', async () => {
  await onBackend('wasm', async () => {
    const clipDir = path.join(tmp, 'clip-small');
    mkdirSync(clipDir);
    await fsp.symlink(path.join(FIX, 'clip-text/weights.safetensors'), path.join(clipDir, 'model.safetensors'));
    await fsp.copyFile(path.join(FIX, 'clip-text/config.json'), path.join(clipDir, 'config.json'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      await fsp.copyFile(path.join(FIX, 'tokenizers/clip', f), path.join(clipDir, f));
    const vqDir = path.join(tmp, 'vq-4x4');
    await writeTinyVqgan(vqDir);
    const dir = await dataset('sampler', { 0: 8 });
    const run = path.join(tmp, 'run-sampler');
    await train(dir, run, [
      'training.max_steps=2',
      'training.save_every=2',
      `model.vq=${vqDir}`,
      `model.text_encoder=clip:${clipDir}`,
      'data.text_max_length=16',
    ]);
    const a = await sampleTwiceAlike(run);
    assert.equal(a.weights, 'ema');
  });
});
