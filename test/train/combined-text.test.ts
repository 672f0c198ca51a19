// Combined T5 + CLIP conditioning (model.text_encoder: A,B): the two text caches packed into one cross-attention
// input (src/train/data/combined-text.ts) and the same packing at sampling (src/models/text/combined.ts), on
// small synthetic caches: the layout, dropout of both together, overfitting, exact resume, sampling, errors.
import { fixturePath } from '../helpers/fixtures.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onBackend } from '../helpers/backend.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { MuseRunner } from '../../src/train/muse/runner.ts';
import { losses, trainMuse, type TrainOptions, sampleTwiceAlike } from '../helpers/muse-training.ts';
import { BYT5_DIM, CLIP_DIM, CLIP_POOLED, COMBINED } from '../helpers/muse-variants.ts';
import { openCombinedTextDataset, packTextParts } from '../../src/train/data/combined-text.ts';
import { openTokenDataset } from '../../src/train/data/loader.ts';
import { dropConditioning } from '../../src/train/muse/cond-dropout.ts';
import { SeededRandom } from '../../src/train/data/random.ts';
import { byt5Tiny, combineTextEncoders, loadTextEncoder } from '../../src/models/text/index.ts';
import { readData } from '../../src/runtime/read.ts';
import { writeTinyVqgan } from '../helpers/tiny-checkpoint.ts';

const root = path.resolve(import.meta.dirname, '../..');
const configsDir = path.join(root, 'configs');
const FIX = fixturePath();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-combined-text-'));

const T5_DIM = BYT5_DIM;
const POOLED = CLIP_POOLED;
const dataset = (name: string, shards: Record<number, number>, o: { noClip?: boolean } = {}) =>
  COMBINED.dataset(tmp, name, shards, o);
const train = (dir: string, runDir: string, sets: string[], o: TrainOptions = {}) =>
  trainMuse(dir, runDir, [...COMBINED.sets, ...sets], o);

test('packTextParts: real T5 states, then real CLIP states, then padding; features [T5 | CLIP]; CLIP pooled', () => {
  // B=2; T5 width 2 (L 3), CLIP width 1 (L 2); lengths T5 [1, 3], CLIP [2, 1].
  const a = {
    hidden: Float32Array.from([1, 2, 9, 9, 9, 9, 3, 4, 5, 6, 7, 8]),
    shape: [2, 3, 2] as [number, number, number],
    lengths: Int32Array.of(1, 3),
  };
  const b = {
    hidden: Float32Array.from([10, 11, 12, 99]),
    shape: [2, 2, 1] as [number, number, number],
    lengths: Int32Array.of(2, 1),
    pooled: Float32Array.of(0.5, 0.25),
    pooledDim: 1,
  };
  const p = packTextParts(a, b);
  assert.deepEqual(p.shape, [2, 4, 3]);
  assert.deepEqual([...p.lengths], [3, 4]);
  assert.deepEqual([...p.mask], [1, 1, 1, 0, 1, 1, 1, 1]);
  assert.deepEqual(
    [...p.hidden],
    [1, 2, 0, /**/ 0, 0, 10, /**/ 0, 0, 11, /**/ 0, 0, 0, 3, 4, 0, /**/ 5, 6, 0, /**/ 7, 8, 0, /**/ 0, 0, 12],
  );
  assert.deepEqual([...p.pooled!], [0.5, 0.25]);
  assert.deepEqual(p.pooledShape, [2, 1]);
  assert.throws(
    () => packTextParts({ ...a, pooled: b.pooled, pooledDim: 1 }, b),
    /both text caches have a pooled vector/,
  );
});

test('combined loader: keys match, texts packed, and dropout replaces both encoders by their empty captions together', async () => {
  const dir = await dataset('loader', { 0: 6 });
  const opts = { datasetDir: dir, vqId: 'vq-test', batchSize: 6, seed: 3, shuffleBuffer: 0 };
  const combined = await openCombinedTextDataset(opts, ['t5-test', 'clip-test']);
  const t5 = await (await openTokenDataset({ ...opts, textId: 't5-test' })).next();
  const clip = await (await openTokenDataset({ ...opts, textId: 'clip-test' })).next();
  const batch = await combined.next();
  assert.deepEqual(batch.keys, t5.keys);
  const [B, L, D] = batch.textShape!;
  assert.equal(D, T5_DIM + CLIP_DIM);
  const [, L1] = t5.textShape!;
  const [, L2] = clip.textShape!;
  for (let i = 0; i < B; i++) {
    const l1 = t5.textLengths![i];
    const l2 = clip.textLengths![i];
    assert.equal(batch.textLengths![i], l1 + l2);
    // T5 position 0 and CLIP position 0 of sample i, in the packed row.
    assert.deepEqual(
      [...batch.textHidden!.subarray(i * L * D, i * L * D + T5_DIM)],
      [...t5.textHidden!.subarray(i * L1 * T5_DIM, (i * L1 + 1) * T5_DIM)],
    );
    assert.deepEqual(
      [...batch.textHidden!.subarray((i * L + l1) * D + T5_DIM, (i * L + l1 + 1) * D)],
      [...clip.textHidden!.subarray(i * L2 * CLIP_DIM, (i * L2 + 1) * CLIP_DIM)],
    );
  }
  assert.deepEqual([...batch.pooled!], [...clip.pooled!]);

  const empty = await combined.emptyText();
  assert.equal(empty.dim, T5_DIM + CLIP_DIM);
  assert.equal(empty.length, 4, 'synthetic empty captions: 2 T5 + 2 CLIP positions');
  assert.equal(empty.pooled?.length, POOLED);
  const before = { hidden: batch.textHidden!.slice(), mask: batch.textMask!.slice(), pooled: batch.pooled!.slice() };
  const dropped = dropConditioning(batch, empty, 0.5, new SeededRandom(7));
  assert.ok(dropped.length > 0 && dropped.length < B, `some but not all dropped (${dropped.length})`);
  for (let i = 0; i < B; i++) {
    const row = [...batch.textHidden!.subarray(i * L * D, (i + 1) * L * D)];
    const pooled = [...batch.pooled!.subarray(i * POOLED, (i + 1) * POOLED)];
    if (dropped.includes(i)) {
      const want = new Array(L * D).fill(0);
      empty.hidden.forEach((v, k) => (want[k] = v));
      assert.deepEqual(row, want, `sample ${i}: T5 and CLIP states both the empty caption's`);
      assert.deepEqual(pooled, [...empty.pooled!], `sample ${i}: pooled CLIP vector the empty caption's`);
      assert.equal(batch.textLengths![i], 4);
    } else {
      assert.deepEqual(row, [...before.hidden.subarray(i * L * D, (i + 1) * L * D)]);
      assert.deepEqual(pooled, [...before.pooled.subarray(i * POOLED, (i + 1) * POOLED)]);
    }
  }
});

test('combined conditioning: a clear error when one of the two text caches is missing, or the widths do not add up', async () => {
  const dir = await dataset('missing', { 0: 4 }, { noClip: true });
  const cfg = loadTrainConfig({ stage: 'tiny', configsDir, sets: [...COMBINED.sets, `data.path=${dir}`] });
  await assert.rejects(
    MuseRunner.create({ config: cfg, datasetDirs: [dir], runDir: path.join(tmp, 'run-missing') }),
    /no text cache made with clip-test \(found t5-test\)/,
  );
  const full = await dataset('widths', { 0: 4 });
  const bad = loadTrainConfig({
    stage: 'tiny',
    configsDir,
    sets: [...COMBINED.sets, `data.path=${full}`, 'model.transformer.encoder_hidden_size=256'],
  });
  await assert.rejects(
    MuseRunner.create({ config: bad, datasetDirs: [full], runDir: path.join(tmp, 'run-widths') }),
    /encoder_hidden_size is 256.*set encoder_hidden_size to 320/,
  );
  assert.throws(
    () =>
      loadTrainConfig({
        stage: 'tiny',
        configsDir,
        sets: [...COMBINED.sets, `data.path=${full}`, 'model.text_encoder=byt5-tiny,t5:/x'],
      }),
    /one T5 .* and one CLIP/,
  );
});

async function clipFixtureDir(): Promise<string> {
  const clipDir = path.join(tmp, 'clip-small');
  mkdirSync(clipDir, { recursive: true });
  await fsp
    .symlink(path.join(FIX, 'clip-text/weights.safetensors'), path.join(clipDir, 'model.safetensors'))
    .catch(() => {});
  await fsp.copyFile(path.join(FIX, 'clip-text/config.json'), path.join(clipDir, 'config.json'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    await fsp.copyFile(path.join(FIX, 'tokenizers/clip', f), path.join(clipDir, f));
  return clipDir;
}

test('combineTextEncoders packs prompts exactly as training packs the two caches', async () => {
  await onBackend('wasm', async () => {
    const t5 = byt5Tiny({ maxLength: 16 });
    const clip = await loadTextEncoder(`clip:${await clipFixtureDir()}`, { maxLength: 16 });
    const prompts = ['a red circle', 'a much longer blue star prompt'];
    const x = t5.encode(prompts);
    const y = clip.encode(prompts);
    const want = packTextParts(
      { hidden: await readData<'float32'>(x.hidden), shape: x.hidden.shape, lengths: Int32Array.from(x.lengths) },
      {
        hidden: await readData<'float32'>(y.hidden),
        shape: y.hidden.shape,
        lengths: Int32Array.from(y.lengths),
        pooled: await readData<'float32'>(y.pooled!),
        pooledDim: POOLED,
      },
    );
    const both = combineTextEncoders(t5, clip);
    assert.equal(both.dim, T5_DIM + CLIP_DIM);
    assert.equal(both.pooledDim, POOLED);
    const got = both.encode(prompts);
    assert.deepEqual(got.hidden.shape, want.shape);
    assert.deepEqual(got.lengths, [...want.lengths]);
    const g = await readData<'float32'>(got.hidden);
    let maxDiff = 0;
    for (let k = 0; k < g.length; k++) maxDiff = Math.max(maxDiff, Math.abs(g[k] - want.hidden[k]));
    assert.ok(maxDiff < 1e-6, `max |Δ| ${maxDiff}`);
    assert.deepEqual([...(await readData<'float32'>(got.pooled!))], [...want.pooled!]);
    for (const t of [x.hidden, y.hidden, y.pooled!, got.hidden, got.pooled!]) t.dispose();
    both.dispose();
  });
});

test('combined conditioning: a trained checkpoint samples through muse-sample with both encoders (guidance)', async () => {
  await onBackend('wasm', async () => {
    const clipDir = await clipFixtureDir();
    const vqDir = path.join(tmp, 'vq-4x4');
    await writeTinyVqgan(vqDir);
    const dir = await dataset('sampler', { 0: 8 });
    const run = path.join(tmp, 'run-sampler');
    await train(dir, run, [
      'training.max_steps=2',
      'training.save_every=2',
      `model.vq=${vqDir}`,
      `model.text_encoder=byt5-tiny,clip:${clipDir}`,
      'data.text_max_length=16',
    ]);
    const info = JSON.parse(readFileSync(path.join(run, 'checkpoints/step-00000002/sampling.json'), 'utf8'));
    assert.equal(
      info.text_encoder,
      `byt5-tiny,clip:text_encoders/${path.basename(clipDir)}`,
      'the CLIP folder is copied into the checkpoint',
    );
    await sampleTwiceAlike(run);
  });
});

test('configs/cc12m-t5-clip.yaml loads: two encoders, encoder_hidden_size = T5 + CLIP widths, pooled CLIP to AdaLN', () => {
  const cfg = loadTrainConfig({ file: path.join(configsDir, 'cc12m-t5-clip.yaml'), configsDir });
  assert.equal(cfg.model.text_encoder, 't5:models/t5-v1_1-large,clip:models/clip-vit-large-patch14');
  assert.equal(cfg.model.transformer.encoder_hidden_size, 1024 + 768);
  assert.equal(cfg.model.transformer.add_cond_embeds, true);
  assert.equal(cfg.model.transformer.cond_embed_dim, 768);
});

test('combined conditioning with the U-ViT (model.architecture: uvit): trains and samples through muse-sample', async () => {
  await onBackend('wasm', async () => {
    const clipDir = await clipFixtureDir();
    const dir = await dataset('uvit', { 0: 8 });
    const run = path.join(tmp, 'run-uvit');
    const uvit = [
      'model.architecture=uvit',
      'model.transformer={codebook_size: 64, vocab_size: 72, num_vq_tokens: 16, hidden_size: 32, in_channels: 16, block_out_channels: [16], ' +
        `num_res_blocks: 1, block_num_heads: 2, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, encoder_hidden_size: ${T5_DIM + CLIP_DIM}, ` +
        `cond_embed_dim: ${POOLED}, micro_cond_encode_dim: 4, micro_cond_embed_dim: 20, default_micro_conds: [64, 64, 0, 0, 6]}`,
    ];
    await train(dir, run, [
      ...uvit,
      'training.max_steps=2',
      'training.save_every=2',
      `model.text_encoder=byt5-tiny,clip:${clipDir}`,
      'data.text_max_length=16',
    ]);
    const l = (await losses(run)).map(([, v]) => v as number);
    assert.equal(l.length, 2);
    assert.ok(l.every(Number.isFinite), `losses ${l}`);
    const { sample } = await import('../../src/sample/sample.ts');
    const out = await sample({ checkpoint: run, prompts: ['a red circle'], steps: 2, guidance: 2, seed: 0 });
    assert.equal(out.images.length, 1);
    assert.equal(out.images[0].ids.length, 16);
  });
});
