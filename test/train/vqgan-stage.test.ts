// muse-train --stage vqgan end to end on the fetched bundled sample: a few steps, validation, reconstruction
// grid, loss curve, and a checkpoint whose vqgan/ folder tokenize and the VQGAN class load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { onBackend } from '../helpers/backend.ts';
import { readEvents } from '../helpers/tfevents.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { runTraining } from '../../src/train/run/run-training.ts';
import { readJsonl } from '../../src/train/core/index.ts';
import { VQGAN } from '../../src/models/vqgan/index.ts';
import { runCli } from '../helpers/cli.ts';

const root = path.resolve(import.meta.dirname, '../..');

test('the vqgan stage trains from shards, validates, draws reconstructions and writes a loadable VQGAN', async () => {
  const dataRoot = mkdtempSync(path.join(os.tmpdir(), 'muse-vqgan-stage-'));
  const fetch = await runCli('muse-data', ['fetch', 'sample', '--data-root', dataRoot]);
  assert.equal(fetch.code, 0, fetch.stderr);
  await onBackend('wasm', async () => {
    const config = loadTrainConfig({
      file: path.join(root, 'configs/tiny-vqgan.yaml'),
      configsDir: path.join(root, 'configs'),
      sets: [
        'data.path=sample',
        'training.max_steps=3',
        'training.save_every=2',
        'training.validate_every=2',
        'training.validation_batches=1',
        'vqgan_training.recon_every=2',
        'training.batch_size=4',
        'data.validation_shards=[2]',
      ],
    });
    const runDir = path.join(dataRoot, 'run');
    const r = await runTraining({
      config,
      runDir,
      dataRoot,
      out: { write: () => true } as unknown as NodeJS.WriteStream,
    });
    assert.equal(r.step, 3);
    const log = await readJsonl(path.join(runDir, 'log.jsonl'));
    const steps = log.filter((x) => typeof x.loss === 'number');
    assert.equal(steps.length, 3);
    for (const s of steps)
      for (const k of ['rec_loss', 'codebook_loss', 'perplexity', 'codebook_usage', 'grad_norm', 'data_ms'])
        assert.equal(typeof s[k], 'number', k);
    assert.ok(
      log.some((x) => typeof x.val_rec_loss === 'number'),
      'validation on the held-out shard',
    );
    const grid = await sharp(readFileSync(path.join(runDir, 'reconstructions/final.png'))).metadata();
    assert.equal(grid.height! % 2, 0);
    assert.ok(existsSync(path.join(runDir, 'reconstructions/step-00000002.png')));
    assert.ok(existsSync(path.join(runDir, 'loss.png')));
    // TensorBoard: the logged metrics and the reconstruction grids.
    const events = readdirSync(path.join(runDir, 'tensorboard')).flatMap((f) =>
      readEvents(path.join(runDir, 'tensorboard', f)),
    );
    const values = events.flatMap((e) => (e.summary?.value ?? []).map((v) => ({ step: e.step, ...v })));
    assert.deepEqual(
      values.filter((v) => v.tag === 'rec_loss').map((v) => [v.step, v.simple_value]),
      steps.map((x) => [x.step, Math.fround(x.rec_loss as number)]),
    );
    assert.ok(
      values.some((v) => v.tag === 'val_rec_loss'),
      'validation metrics too',
    );
    const grids = values.filter((v) => v.tag === 'reconstructions');
    assert.deepEqual(
      grids.map((v) => v.step),
      [2, 3],
    );
    assert.ok(
      grids[1].image!.encoded_image_string.equals(readFileSync(path.join(runDir, 'reconstructions/final.png'))),
    );
    const vq = await VQGAN.fromSafetensors(path.join(r.checkpoint!, 'vqgan'));
    assert.equal(vq.config.resolution, config.data.resolution);
    assert.equal(vq.tokensPerImage, 64);
    vq.dispose();
  });
});
