// A tiny, randomly initialised checkpoint laid out as `muse-train` writes one (see load.ts), for tests and
// demos that must not depend on a trained model: a 32 px VQGAN with a 4x4 token grid and a one-layer
// text-conditioned transformer reading the built-in byt5-tiny encoder.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MaskGitTransformer, type MaskGitTransformerConfig } from '../../src/models/transformer/index.ts';
import { VQGAN, type VqganConfig } from '../../src/models/vqgan/index.ts';
import { BYT5_TINY_CONFIG } from '../../src/models/text/index.ts';
import type { SamplingInfo } from '../../src/sample/load.ts';

export const TINY_VQ_CONFIG: Partial<VqganConfig> = {
  resolution: 32,
  hiddenChannels: 32,
  channelMult: [1, 1, 1, 1],
  numResBlocks: 1,
  zChannels: 8,
  quantizedEmbedDim: 8,
  numEmbeddings: 32,
};

export function tinyTransformerConfig(opts: { classes?: number } = {}): Partial<MaskGitTransformerConfig> {
  return {
    hidden_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 64,
    hidden_dropout: 0,
    attention_dropout: 0,
    codebook_size: 32,
    num_vq_tokens: 16,
    max_position_embeddings: opts.classes ? 17 : 16,
    add_cross_attention: !opts.classes,
    encoder_hidden_size: BYT5_TINY_CONFIG.d_model!,
    // A wide init makes the random model's predictions depend visibly on its inputs.
    initializer_range: 0.5,
    num_classes: opts.classes ?? null,
  };
}

export interface TinyCheckpointOptions {
  /** Write an ema/ folder too (from a different seed than transformer/). Default true. */
  ema?: boolean;
  /** Class-conditional with this many classes (no text encoder). */
  classes?: number;
  seed?: number;
  prompts?: string[];
}

/** Writes `<dir>/vq` and the checkpoint `<dir>/ckpt`; returns the checkpoint directory. */
export async function writeTinyCheckpoint(dir: string, opts: TinyCheckpointOptions = {}): Promise<string> {
  const seed = opts.seed ?? 1;
  const vqDir = path.join(dir, 'vq');
  const vq = VQGAN.create(TINY_VQ_CONFIG, seed);
  try {
    await vq.save(vqDir);
  } finally {
    vq.dispose();
  }
  const ckpt = path.join(dir, 'ckpt');
  await mkdir(ckpt, { recursive: true });
  const cfg = tinyTransformerConfig({ classes: opts.classes });
  const folders: Array<[string, number]> = [['transformer', seed]];
  if (opts.ema ?? true) folders.push(['ema', seed + 1000]);
  for (const [name, s] of folders) {
    const t = new MaskGitTransformer(cfg, { seed: s });
    try {
      await t.save(path.join(ckpt, name));
    } finally {
      t.dispose();
    }
  }
  const side = Math.sqrt(cfg.num_vq_tokens!);
  const info: SamplingInfo = {
    vq: path.resolve(vqDir),
    text_encoder: opts.classes ? null : 'byt5-tiny',
    text_max_length: opts.classes ? null : 64,
    class_conditional: !!opts.classes,
    resolution: TINY_VQ_CONFIG.resolution!,
    grid: [side, side],
    prompts: opts.prompts ?? ['a red circle on a blue background', 'a white star on a black background'],
  };
  await writeFile(path.join(ckpt, 'sampling.json'), JSON.stringify(info, null, 2) + '\n');
  return ckpt;
}

/** A random 32 px VQGAN folder with a 4x4 token grid and 64 codes, as training tests pass to `model.vq`. */
export async function writeTinyVqgan(dir: string, seed = 3): Promise<string> {
  const vq = VQGAN.create({ ...TINY_VQ_CONFIG, numEmbeddings: 64 }, seed);
  await vq.save(dir);
  vq.dispose();
  return dir;
}
