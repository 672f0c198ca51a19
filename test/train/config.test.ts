import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { STAGES } from '../../src/train/config/schema.ts';

const configsDir = path.resolve(import.meta.dirname, '../../configs');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-train-config-'));

function fileWith(text: string): string {
  const f = path.join(tmp, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, text);
  return f;
}

test('every stage config in configs/ loads and validates', () => {
  for (const stage of STAGES) {
    const cfg = loadTrainConfig({
      stage,
      file: stage === 'cc12m' ? path.join(configsDir, 'cc12m-t5.yaml') : undefined,
      configsDir,
    });
    assert.equal(cfg.stage, stage);
  }
  for (const f of ['cc12m-clip.yaml', 'tiny-vqgan.yaml'])
    loadTrainConfig({ file: path.join(configsDir, f), configsDir });
});

test("the paper-scale configs use the references' global batch (training.batch_size, split into accumulation steps)", () => {
  const b = loadTrainConfig({ stage: 'base256', configsDir });
  assert.equal(b.training.batch_size, 512);
  assert.equal(b.training.batch_size / b.training.gradient_accumulation_steps, 16);
  const i = loadTrainConfig({ stage: 'imagenet', configsDir });
  assert.equal(i.model.transformer.num_classes, 1000);
});

test('--set overrides keys with YAML-typed values', () => {
  const cfg = loadTrainConfig({
    stage: 'tiny',
    configsDir,
    sets: [
      'training.max_steps=7',
      'optimizer.lr=3e-4',
      'data.path=/x/y',
      'training.seed=5',
      'model.transformer.hidden_size=64',
    ],
  });
  assert.equal(cfg.training.max_steps, 7);
  assert.equal(cfg.optimizer.lr, 3e-4);
  assert.equal(cfg.data.path, '/x/y');
  assert.equal(cfg.training.seed, 5);
  assert.equal(cfg.model.transformer.hidden_size, 64);
});

test('config errors name the file or flag and the key', () => {
  const err = (fn: () => unknown, re: RegExp) => assert.throws(fn, re);
  err(
    () => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['training.max_step=7'] }),
    /unknown key 'training.max_step'.*did you mean 'training.max_steps'/,
  );
  err(
    () => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['training.max_steps=0'] }),
    /training.max_steps must be a positive integer/,
  );
  err(
    () => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['training.batch_size=abc'] }),
    /training.batch_size must be number/,
  );
  err(() => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['training.mixed_precision=bf16'] }), /float32 only/);
  err(
    () => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['training.mask_schedule=zigzag'] }),
    /unknown mask schedule 'zigzag'/,
  );
  err(
    () => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['lr_scheduler.schedule=step'] }),
    /must be one of constant, cosine, linear/,
  );
  err(
    () => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['model.transformer.num_attention_heads=3'] }),
    /model.transformer.*divisible/,
  );
  err(
    () => loadTrainConfig({ stage: 'tiny', configsDir, sets: ['model.text_encoder=null'] }),
    /model.text_encoder must be set/,
  );
  err(() => loadTrainConfig({ stage: 'nope', configsDir }), /unknown stage 'nope'/);
  err(
    () => loadTrainConfig({ file: fileWith('training:\n  batchsize: 3\n'), configsDir }),
    /unknown key 'training.batchsize'.*batch_size/,
  );
  err(() => loadTrainConfig({ file: fileWith('training: [1, 2\n'), configsDir }), /not valid YAML/);
  err(() => loadTrainConfig({ file: fileWith('- 1\n- 2\n'), configsDir }), /expected a mapping/);
  err(() => loadTrainConfig({ file: path.join(tmp, 'missing.yaml'), configsDir }), /no such config file/);
  err(
    () =>
      loadTrainConfig({
        file: fileWith('stage: vqgan\nmodel:\n  vqgan: { z_channels: 8, quantized_embed_dim: 4 }\n'),
        configsDir,
      }),
    /model.vqgan.*quantized_embed_dim/,
  );
  err(
    () => loadTrainConfig({ file: fileWith('data:\n  path: [a, b]\n  weights: [1]\n'), configsDir }),
    /data.weights has 1 entries for 2 dataset/,
  );
  // tiny-vqgan is f4: a crop must be a multiple of 4 pixels, at most its resolution
  const tinyVq = path.join(configsDir, 'tiny-vqgan.yaml');
  err(
    () => loadTrainConfig({ file: tinyVq, configsDir, sets: ['data.random_crop=14'] }),
    /data.random_crop must be null or a multiple of the VQGAN's downsampling factor 4 between 4 and the resolution/,
  );
  err(() => loadTrainConfig({ file: tinyVq, configsDir, sets: ['data.random_crop=64'] }), /data.random_crop/);
  assert.equal(loadTrainConfig({ file: tinyVq, configsDir, sets: ['data.random_crop=8'] }).data.random_crop, 8);
});
