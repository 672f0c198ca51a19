// CLIP score as torchmetrics defines it: 100 · cos(image embedding, text embedding) per pair, averaged over
// the pairs, then clamped at 0 (torchmetrics clamps the mean, not each pair). Embeddings come from an HF
// CLIPModel folder: the vision tower (src/models/clip-vision) and the project's CLIP text encoder, with the
// folder's tokenizer.json and preprocessor settings.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ClipVisionEncoder } from '../../models/clip-vision/model.ts';
import { ClipTextEncoder } from '../../models/text/clip.ts';
import { loadClipTokenizer, type HfTokenizer } from '../../models/text/tokenizer.ts';
import { clipImageSettings, clipPixels, type ClipImageSettings } from './preprocess.ts';

export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Mean of 100·cos over the pairs, clamped at 0; also the per-pair values (not clamped). */
export function clipScoreFromEmbeddings(
  image: Float32Array,
  text: Float32Array,
  n: number,
  dim: number,
): { score: number; perPair: number[] } {
  if (image.length !== n * dim || text.length !== n * dim)
    throw new Error(`CLIP score: ${n} pairs of ${dim}-d embeddings expected`);
  if (n === 0) throw new Error('CLIP score: no image-prompt pairs');
  const perPair: number[] = [];
  for (let i = 0; i < n; i++) {
    let dot = 0;
    let ni = 0;
    let nt = 0;
    for (let j = 0; j < dim; j++) {
      const a = image[i * dim + j];
      const b = text[i * dim + j];
      dot += a * b;
      ni += a * a;
      nt += b * b;
    }
    perPair.push((100 * dot) / Math.sqrt(ni * nt));
  }
  const mean = perPair.reduce((a, b) => a + b, 0) / n;
  return { score: Math.max(mean, 0), perPair };
}

export class ClipScorer {
  private constructor(
    readonly vision: ClipVisionEncoder,
    readonly text: ClipTextEncoder,
    readonly tokenizer: HfTokenizer,
    readonly image: ClipImageSettings,
  ) {}

  /** Loads an HF CLIPModel folder: config.json, model.safetensors, tokenizer.json, preprocessor settings. */
  static async load(dir: string): Promise<ClipScorer> {
    const stat = await fsp.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory())
      throw new Error(`${dir}: not a CLIP model folder (config.json, model.safetensors, tokenizer.json)`);
    const tokFile = path.join(dir, 'tokenizer.json');
    if (!(await fsp.stat(tokFile).catch(() => undefined)))
      throw new Error(`${dir}: no tokenizer.json (the CLIP BPE tokenizer is needed for the prompts)`);
    let pre: Record<string, unknown> | undefined;
    for (const f of ['preprocessor_config.json', 'processor_config.json']) {
      const text = await fsp.readFile(path.join(dir, f), 'utf8').catch(() => undefined);
      if (text !== undefined) {
        pre = JSON.parse(text) as Record<string, unknown>;
        break;
      }
    }
    const vision = await ClipVisionEncoder.fromSafetensors(dir);
    try {
      const text = await ClipTextEncoder.fromSafetensors(dir);
      if (text.config.projection_dim !== vision.config.projection_dim) {
        text.dispose();
        throw new Error(
          `${dir}: text projection ${text.config.projection_dim}-d but visual projection ${vision.config.projection_dim}-d`,
        );
      }
      const tokenizer = await loadClipTokenizer(tokFile, { maxLength: text.config.max_position_embeddings });
      return new ClipScorer(vision, text, tokenizer, clipImageSettings(pre, vision.config.image_size));
    } catch (err) {
      vision.dispose();
      throw err;
    }
  }

  get dim(): number {
    return this.vision.config.projection_dim;
  }

  /** Image embeddings [n·dim] of decoded RGB images, in batches. */
  async imageEmbeddings(images: DecodedImage[], batch = 16): Promise<Float32Array> {
    const out = new Float32Array(images.length * this.dim);
    const S = this.image.crop;
    for (let i = 0; i < images.length; i += batch) {
      const chunk = images.slice(i, i + batch);
      const px = new Float32Array(chunk.length * S * S * 3);
      chunk.forEach((im, k) => px.set(clipPixels(im.data, im.width, im.height, this.image), k * S * S * 3));
      const input = tf.tensor4d(px, [chunk.length, S, S, 3]);
      const emb = this.vision.imageEmbeds(input);
      out.set(await emb.data(), i * this.dim);
      tf.dispose([input, emb]);
    }
    return out;
  }

  /** Text embeddings [n·dim] of prompts (CLIP tokenizer, truncated to the model's positions). */
  async textEmbeddings(prompts: string[], batch = 32): Promise<Float32Array> {
    const out = new Float32Array(prompts.length * this.dim);
    for (let i = 0; i < prompts.length; i += batch) {
      const tb = this.tokenizer.batch(prompts.slice(i, i + batch), { padding: 'longest' });
      const ids = tf.tensor2d(tb.ids, [tb.batch, tb.length], 'int32');
      const mask = tf.tensor2d(tb.mask, [tb.batch, tb.length], 'int32');
      const r = this.text.forward(ids, mask);
      out.set(await r.textEmbeds!.data(), i * this.dim);
      tf.dispose([ids, mask, r.lastHiddenState, r.penultimateHiddenState, r.pooled, r.textEmbeds!]);
    }
    return out;
  }

  /** CLIP score of image i with prompt i. */
  async score(images: DecodedImage[], prompts: string[]): Promise<{ score: number; perPair: number[] }> {
    if (images.length !== prompts.length)
      throw new Error(`CLIP score: ${images.length} images but ${prompts.length} prompts`);
    const [a, b] = [await this.imageEmbeddings(images), await this.textEmbeddings(prompts)];
    return clipScoreFromEmbeddings(a, b, images.length, this.dim);
  }

  dispose(): void {
    this.vision.dispose();
    this.text.dispose();
  }
}
