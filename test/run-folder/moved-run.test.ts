// A run folder names what it needs relative to itself: trained with a text encoder folder (t5:DIR) and a VQGAN
// folder, then moved elsewhere, it resumes with `--resume latest` and samples from the new place with the original
// model folders gone. A checkpoint written with absolute paths (older sampling.json) still loads.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend } from '../helpers/backend.ts';
import { writeSyntheticCaches } from '../helpers/synthetic-cache.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseRunner } from '../../src/train/muse/runner.ts';
import { runTrainingLoop } from '../../src/train/run/loop.ts';
import { writeDemoTextEncoder } from '../../src/demo/text-encoder.ts';
import { writeTinyVqgan } from '../helpers/tiny-checkpoint.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-moved-run-'));
const quiet = { write: () => true } as unknown as NodeJS.WriteStream;
const PROMPTS = ['a red circle', 'a blue star'];
after(() => rmSync(tmp, { recursive: true, force: true }));

async function train(data: string, runDir: string, sets: string[], resume?: string) {
  const cfg = loadTrainConfig({
    stage: 'tiny',
    configsDir: path.join(root, 'configs'),
    sets: [
      'model.transformer={codebook_size: 64, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, ' +
        'num_attention_heads: 2, intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: 128}',
      'data.vq_id=vq-test',
      'data.text_id=text-test',
      'data.validation_shards=[]',
      'training.batch_size=4',
      'training.validate_every=0',
      'training.save_every=2',
      'ema.enabled=false',
      `data.path=${data}`,
      ...sets,
    ],
  });
  const runner = await MuseRunner.create({ config: cfg, datasetDirs: [data], runDir });
  try {
    return await runTrainingLoop({ config: cfg, runDir, runner, resume, out: quiet });
  } finally {
    runner.dispose();
  }
}

async function pngs(checkpoint: string): Promise<Buffer[]> {
  const { sample } = await import('../../src/sample/sample.ts');
  return (await sample({ checkpoint, prompts: PROMPTS, steps: 2, guidance: 2, seed: 1 })).images.map((im) => im.png);
}

const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

test('a moved run folder resumes and samples without its original VQGAN and text encoder folders; absolute paths still load', async () => {
  await onBackend('wasm', async () => {
    const data = path.join(tmp, 'data');
    mkdirSync(path.join(data, 'shards'), { recursive: true });
    await writeSyntheticCaches(data, { shards: { 0: 8 }, gridH: 4, gridW: 4, codebookSize: 64, dim: 128 });
    const models = path.join(tmp, 'models');
    const t5 = path.join(models, 'words-t5');
    await writeDemoTextEncoder(t5, PROMPTS);
    const vqDir = path.join(models, 'vq-4x4');
    await writeTinyVqgan(vqDir);
    const sets = [`model.vq=${vqDir}`, `model.text_encoder=t5:${t5}`];

    const run = path.join(tmp, 'runs', 'first');
    await train(data, run, [...sets, 'training.max_steps=2']);
    const step2 = path.join(run, 'checkpoints', 'step-00000002');
    const info = JSON.parse(readFileSync(path.join(step2, 'sampling.json'), 'utf8'));
    assert.equal(
      info.text_encoder,
      't5:text_encoders/words-t5',
      'the text encoder is named relative to the checkpoint',
    );
    assert.equal(info.vq, 'vq');
    assert.ok(
      'text_encoders/words-t5/model.safetensors' in
        JSON.parse(readFileSync(path.join(step2, 'trainer_state.json'), 'utf8')).files,
      'the copy is verified like the weights',
    );
    const before = await pngs(run);

    // Moved to another parent and depth: resume there (the config still names the model folders, which are present).
    const moved = path.join(tmp, 'elsewhere', 'deeper', 'moved');
    mkdirSync(path.dirname(moved), { recursive: true });
    renameSync(run, moved);
    const resumed = await train(data, moved, [...sets, 'training.max_steps=4'], 'latest');
    assert.equal(resumed.startStep, 2);
    assert.equal(resumed.step, 4);
    assert.equal(resumed.checkpoint, path.join(moved, 'checkpoints', 'step-00000004'));

    // The original model folders gone: both checkpoints of the moved run still sample, the old one as before the move.
    renameSync(models, `${models}-gone`);
    try {
      const again = await pngs(path.join(moved, 'checkpoints', 'step-00000002'));
      again.forEach((png, i) => assert.ok(png.equals(before[i]), 'the moved checkpoint samples the same image'));
      assert.equal((await pngs(moved)).length, 2, 'the run folder samples its latest checkpoint');
    } finally {
      renameSync(`${models}-gone`, models);
    }

    // An older checkpoint: sampling.json with absolute paths (its trainer_state.json recording that file) loads.
    const old = path.join(moved, 'checkpoints', 'step-00000002');
    const abs = { ...info, vq: vqDir, text_encoder: `t5:${t5}` };
    writeFileSync(path.join(old, 'sampling.json'), JSON.stringify(abs, null, 2) + '\n');
    const statePath = path.join(old, 'trainer_state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8'));
    state.files['sampling.json'] = {
      bytes: statSync(path.join(old, 'sampling.json')).size,
      sha256: sha256(path.join(old, 'sampling.json')),
    };
    writeFileSync(statePath, JSON.stringify(state, null, 2) + '\n');
    const fromAbsolute = await pngs(old);
    fromAbsolute.forEach((png, i) => assert.ok(png.equals(before[i]), 'absolute paths load the same models'));
  });
});
