// CLIP score parts against transformers' CLIPModel and torchmetrics' clip_score (fixtures/eval/clip*, made by
// test/fixtures/make/make_eval_fixtures.py from a small random CLIPModel, weights stored as float16).
import { fixturePath } from '../helpers/fixtures.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { loadSafetensors, toTensor } from '../../src/models/safetensors.ts';
import { ClipVisionEncoder } from '../../src/models/clip-vision/model.ts';
import { ClipTextEncoder } from '../../src/models/text/clip.ts';
import { clipImageSettings, clipPixels } from '../../src/eval/clip/preprocess.ts';
import { ClipScorer, clipScoreFromEmbeddings, type DecodedImage } from '../../src/eval/clip/score.ts';
import { onBackend } from '../helpers/backend.ts';

const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'eval');
const CLIP_DIR = path.join(FIX, 'clip');
const TOKENIZER = fixturePath('tokenizers', 'clip', 'tokenizer.json');
const expected = JSON.parse(readFileSync(path.join(FIX, 'clip_expected.json'), 'utf8')) as {
  prompts: string[];
  clip_score: number;
  clip_score_shuffled: number;
  per_pair_score: number[];
};
await tf.setBackend('cpu');

async function images(): Promise<DecodedImage[]> {
  const out = [];
  for (const f of ['img0', 'img1', 'img2']) {
    const { data, info } = await sharp(path.join(FIX, 'images', `${f}.png`))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    out.push({ data: new Uint8Array(data), width: info.width, height: info.height });
  }
  return out;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** The fixture folder plus the real CLIP tokenizer (kept once, in test/fixtures/tokenizers). */
async function clipFolder(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'muse-clip-'));
  for (const f of await fsp.readdir(CLIP_DIR)) await fsp.copyFile(path.join(CLIP_DIR, f), path.join(dir, f));
  await fsp.copyFile(TOKENIZER, path.join(dir, 'tokenizer.json'));
  return dir;
}

for (const backend of ['cpu', 'wasm'] as const) {
  test(`CLIP vision + text embeddings match transformers' get_image_features / get_text_features on ${backend}`, () =>
    onBackend(backend, async () => {
      const ex = await loadSafetensors(path.join(FIX, 'clip_expected.safetensors'));
      const vision = await ClipVisionEncoder.fromSafetensors(CLIP_DIR);
      const px = tf.transpose(toTensor(ex.pixel_values), [0, 2, 3, 1]) as tf.Tensor4D;
      const img = await vision.imageEmbeds(px).data();
      const di = maxAbs(img, ex.image_embeds.data);
      const text = await ClipTextEncoder.fromSafetensors(CLIP_DIR);
      const out = text.forward(toTensor(ex.input_ids), toTensor(ex.attention_mask));
      const dt = maxAbs(await out.textEmbeds!.data(), ex.text_embeds.data);
      console.log(
        `CLIP on ${backend}: image_embeds max |Δ| ${di.toExponential(2)}, text_embeds max |Δ| ${dt.toExponential(2)}`,
      );
      assert.ok(di <= 1e-4 && dt <= 1e-4, `image ${di}, text ${dt}`);
      const s = clipScoreFromEmbeddings(
        img as Float32Array,
        (await out.textEmbeds!.data()) as Float32Array,
        3,
        vision.config.projection_dim,
      );
      assert.ok(maxAbs(s.perPair, expected.per_pair_score) < 1e-3, `${s.perPair} vs ${expected.per_pair_score}`);
      vision.dispose();
      text.dispose();
    }));
}

test("CLIP preprocessing (PIL bicubic shortest edge, centre crop, normalise) matches transformers' PIL processor", async () => {
  const ex = await loadSafetensors(path.join(FIX, 'clip_expected.safetensors'));
  const pre = JSON.parse(readFileSync(path.join(CLIP_DIR, 'processor_config.json'), 'utf8')) as Record<string, unknown>;
  const s = clipImageSettings(pre, 32);
  assert.deepEqual([s.size, s.crop], [32, 32]);
  const level = 1 / 255 / 0.2613; // one grey level in the greenest channel's normalised units
  for (const [which, tol] of [
    ['pixel_values_pil', 0.01 * level],
    ['pixel_values', 1.01 * level],
  ] as const) {
    const ref = (await tf.transpose(toTensor(ex[which]), [0, 2, 3, 1]).data()) as Float32Array;
    let worst = 0;
    for (const [i, im] of (await images()).entries()) {
      const ours = clipPixels(im.data, im.width, im.height, s);
      worst = Math.max(worst, maxAbs(ours, ref.subarray(i * ours.length, (i + 1) * ours.length)));
    }
    console.log(
      `CLIP ${which} (transformers ${which.endsWith('pil') ? 'PIL' : 'default torchvision'} backend): max |Δ| ${worst.toFixed(4)} = ${(worst / level).toFixed(2)} grey levels`,
    );
    assert.ok(worst <= tol, `${which}: max |Δ| ${worst}`);
  }
});

test("CLIP score of images and prompts matches torchmetrics' clip_score (and the shuffled pairing)", async () => {
  const scorer = await ClipScorer.load(await clipFolder());
  const ims = await images();
  const p = expected.prompts;
  const r = await scorer.score(ims, p);
  const shuffled = await scorer.score(ims, [...p.slice(1), p[0]]);
  console.log(
    `CLIP score ours ${r.score.toFixed(4)} torchmetrics ${expected.clip_score.toFixed(4)}; shuffled ${shuffled.score.toFixed(4)} vs ${expected.clip_score_shuffled.toFixed(4)}`,
  );
  assert.ok(Math.abs(r.score - expected.clip_score) < 0.05, `${r.score}`);
  assert.ok(Math.abs(shuffled.score - expected.clip_score_shuffled) < 0.05, `${shuffled.score}`);
  await assert.rejects(scorer.score(ims, p.slice(0, 2)), /3 images but 2 prompts/);
  scorer.dispose();
});

test('CLIP score: matching pairs score above shuffled ones; the mean (not each pair) is clamped at 0', () => {
  // Embeddings where image i and text i share a direction (+ noise): what a trained CLIP gives matching pairs.
  const n = 6;
  const dim = 8;
  let seed = 3;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  const base = Array.from({ length: n }, () => Array.from({ length: dim }, rnd));
  const img = new Float32Array(base.flatMap((v) => v.map((x) => x + 0.1 * rnd())));
  const txt = new Float32Array(base.flatMap((v) => v.map((x) => x + 0.1 * rnd())));
  const shuffledTxt = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) shuffledTxt.set(txt.subarray(((i + 1) % n) * dim, (((i + 1) % n) + 1) * dim), i * dim);
  const match = clipScoreFromEmbeddings(img, txt, n, dim).score;
  const shuf = clipScoreFromEmbeddings(img, shuffledTxt, n, dim).score;
  assert.ok(match > 90 && match > shuf + 30, `matching ${match}, shuffled ${shuf}`);
  const neg = clipScoreFromEmbeddings(
    img,
    txt.map((x) => -x),
    n,
    dim,
  );
  assert.equal(neg.score, 0);
  assert.ok(neg.perPair.every((s) => s < -90));
});

test('a CLIP folder without a tokenizer or with mismatched towers is refused with the reason', async () => {
  await assert.rejects(ClipScorer.load(CLIP_DIR), /no tokenizer\.json/);
  await assert.rejects(ClipScorer.load(path.join(FIX, 'nope')), /not a CLIP model folder/);
});
