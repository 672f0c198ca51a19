/**
 * muse-eval throughput, per tfjs backend: FID Inception features/s (pytorch-fid architecture,
 * deterministic random weights, 299 px and the demo's 139 px), CLIP ViT-B/32 image embeddings/s (224 px) and
 * text embeddings/s (77 tokens), random weights of the real architectures; plus the CPU-side parts: clean-fid
 * (PIL bicubic) vs pytorch-fid (bilinear) resize per image, and the float64 statistics + Fréchet distance at
 * 2048 dimensions. Backends: wasm, and webgpu / tensorflow when registered (skipped with a note otherwise), or
 * `--backend NAME`. Medians of 3 timed batches after one warm-up batch.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../src/runtime/backend.ts';
import { FidInception } from '../src/models/inception/index.ts';
import { ClipVisionEncoder } from '../src/models/clip-vision/model.ts';
import { ClipTextEncoder } from '../src/models/text/clip.ts';
import { cleanFidResize, fidInputImage } from '../src/eval/fid/resize.ts';
import { featureStatistics } from '../src/eval/fid/statistics.ts';
import { frechetDistance } from '../src/eval/fid/frechet.ts';
import { mulberry32 } from '../src/util/prng.ts';
import { markdownTable, median, round } from './lib.ts';

async function timeBatches(fn: () => Promise<void>, reps: number): Promise<number[]> {
  await fn(); // warm-up: kernels compiled, weights uploaded
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return ms;
}

export async function benchEval(
  opts: { quick?: boolean; log?: (m: string) => void; backends?: string[] } = {},
): Promise<object> {
  const log = opts.log ?? (() => {});
  const reps = opts.quick ? 1 : 3;
  const batch = opts.quick ? 2 : 8;
  const backends = opts.backends ?? ['tensorflow', 'webgpu', 'wasm'];
  const rows: Array<Record<string, unknown>> = [];
  const skipped: string[] = [];
  const rnd = mulberry32(14);
  for (const backend of backends) {
    try {
      await initBackend(backend as BackendName, { quiet: true });
      if (tf.getBackend() !== backend) throw new Error(`came up as ${tf.getBackend()}`);
    } catch (err) {
      const msg = `${backend}: ${(err as Error).message.split('\n')[0]}; skipped`;
      log(msg);
      skipped.push(msg);
      continue;
    }
    log(`backend ${backend}: FID Inception`);
    const inc = new FidInception({ random: true });
    const r: Record<string, unknown> = { backend };
    for (const side of [299, 139]) {
      const x = tf.randomUniform([batch, side, side, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const ms = await timeBatches(async () => {
        const f = inc.features(x);
        await f.data();
        f.dispose();
      }, reps);
      r[`inception_${side}_images_per_s`] = round((batch * 1000) / median(ms), 2);
      x.dispose();
    }
    inc.dispose();
    log(`backend ${backend}: CLIP ViT-B/32`);
    const vis = new ClipVisionEncoder({ image_size: 224, patch_size: 32 }, { seed: 1 });
    const px = tf.randomNormal([batch, 224, 224, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const vms = await timeBatches(async () => {
      const e = vis.imageEmbeds(px);
      await e.data();
      e.dispose();
    }, reps);
    r.clip_image_embeddings_per_s = round((batch * 1000) / median(vms), 2);
    px.dispose();
    vis.dispose();
    const txt = new ClipTextEncoder({}, { seed: 1 });
    const tb = 2 * batch;
    const ids = tf.tensor2d(
      Int32Array.from({ length: tb * 77 }, (_, i) => (i % 77 === 76 ? 49407 : 1 + Math.floor(rnd() * 49000))),
      [tb, 77],
      'int32',
    );
    const tms = await timeBatches(async () => {
      const o = txt.forward(ids);
      await o.textEmbeds!.data();
      tf.dispose([o.lastHiddenState, o.penultimateHiddenState, o.pooled, o.textEmbeds!]);
    }, reps);
    r.clip_text_embeddings_per_s = round((tb * 1000) / median(tms), 2);
    ids.dispose();
    txt.dispose();
    rows.push(r);
    log(JSON.stringify(r));
  }

  // CPU side (backend-independent code; tensors for the bilinear path on the last backend).
  const side = 256;
  const img = Uint8Array.from({ length: side * side * 3 }, () => Math.floor(rnd() * 256));
  const clean = await timeBatches(async () => {
    cleanFidResize(img, side, side, 299, 299);
  }, reps * 3);
  const bilinear = await timeBatches(async () => {
    const t = fidInputImage(img, side, side, 'pytorch-fid', 299);
    await t.data();
    t.dispose();
  }, reps * 3);
  const dim = 2048;
  const frechet: Array<Record<string, number>> = [];
  for (const n of opts.quick ? [64] : [256, 512]) {
    const f1 = Float32Array.from({ length: n * dim }, () => rnd());
    const f2 = Float32Array.from({ length: n * dim }, () => rnd() + 0.01);
    const t0 = performance.now();
    const s1 = featureStatistics(f1, n, dim);
    const s2 = featureStatistics(f2, n, dim);
    const t1 = performance.now();
    frechetDistance(s1, s2);
    const t2 = performance.now();
    frechet.push({ n, statistics_s: round((t1 - t0) / 1000, 2), frechet_s: round((t2 - t1) / 1000, 2) });
    log(`frechet n ${n}: ${JSON.stringify(frechet[frechet.length - 1])}`);
  }
  const cpu = {
    clean_resize_ms_per_image: round(median(clean), 1),
    bilinear_resize_ms_per_image: round(median(bilinear), 1),
    clean_vs_bilinear_ratio: round(median(clean) / median(bilinear), 2),
  };
  const table =
    markdownTable(
      [
        'backend',
        'Inception 299 px images/s',
        'Inception 139 px images/s',
        'CLIP B/32 image emb/s',
        'CLIP B/32 text emb/s (77 tok)',
      ],
      rows.map((r) => [
        String(r.backend),
        String(r.inception_299_images_per_s),
        String(r.inception_139_images_per_s),
        String(r.clip_image_embeddings_per_s),
        String(r.clip_text_embeddings_per_s),
      ]),
    ) +
    '\n\n' +
    markdownTable(
      ['CPU part', 'figure'],
      [
        ['clean-fid resize 256→299 (PIL bicubic, JS), ms/image', cpu.clean_resize_ms_per_image],
        ['pytorch-fid resize 256→299 (tfjs bilinear), ms/image', cpu.bilinear_resize_ms_per_image],
        ...frechet.map(
          (f) =>
            [
              `2048-d statistics + Fréchet distance, 2 sets × ${f.n} images, s`,
              `${f.statistics_s} + ${f.frechet_s}`,
            ] as [string, string],
        ),
      ],
    );
  return {
    config: {
      batch,
      reps,
      inception: 'pytorch-fid FID InceptionV3, random weights',
      clip: 'ViT-B/32 shapes (HF defaults), random weights',
    },
    backends: rows,
    cpu,
    frechet,
    notes: skipped,
    table,
  };
}
