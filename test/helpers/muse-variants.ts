/**
 * The MUSE variants the training tests run, each a small model and the synthetic caches it reads: its stage,
 * its `--set`s, and a writer for a dataset folder of `shards` (shard -> samples). test/train/muse-variants.test.ts
 * runs the same tests on each; the variant's own file tests what only it has.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeSyntheticCaches } from './synthetic-cache.ts';

export interface MuseVariant {
  name: string;
  stage: string;
  /** The model and data keys (`--set`s) of the variant. */
  sets: string[];
  /** Codes of the tokens the model predicts (its initial loss is near ln of this). */
  codebook: number;
  /** Writes the caches the variant reads into `<parent>/<name>` and returns that dataset folder. */
  dataset(parent: string, name: string, shards: Record<number, number>): Promise<string>;
}

const COMMON = ['data.validation_shards=[]', 'training.batch_size=4', 'training.validate_every=0'];
/** The caches writeSyntheticCaches names by default, and an EMA of the weights. */
const SYNTHETIC_CACHES_WITH_EMA = [
  'data.vq_id=vq-test',
  'data.text_id=text-test',
  ...COMMON,
  'ema.enabled=true',
  'ema.decay=0.9',
];

function datasetDir(parent: string, name: string): string {
  const dir = path.join(parent, name);
  mkdirSync(path.join(dir, 'shards'), { recursive: true });
  return dir;
}

/** The text-conditioned MaskGitTransformer: 4x4 tokens of 64 codes, 8-wide text states. */
export const TRANSFORMER: MuseVariant = {
  name: 'transformer',
  stage: 'tiny',
  codebook: 64,
  sets: [
    'model.transformer={codebook_size: 64, num_vq_tokens: 16, max_position_embeddings: 16, hidden_size: 32, num_hidden_layers: 1, ' +
      'num_attention_heads: 2, intermediate_size: 64, add_cross_attention: true, encoder_hidden_size: 8, norm_type: rmsnorm, ' +
      'use_normformer: false, use_codebook_size_for_output: true, hidden_dropout: 0.1, attention_dropout: 0.1}',
    ...SYNTHETIC_CACHES_WITH_EMA,
  ],
  async dataset(parent, name, shards) {
    const dir = datasetDir(parent, name);
    await writeSyntheticCaches(dir, { shards, gridH: 4, gridW: 4, codebookSize: 64, dim: 8 });
    return dir;
  },
};

// The small CLIP text fixture's widths (hidden 64, projection 32), so a checkpoint can sample with it.
export const CLIP_DIM = 64;
export const CLIP_POOLED = 32;

/** architecture: uvit (MaskGiTUViT): pooled text and micro-conditions by AdaLN. */
export const UVIT: MuseVariant = {
  name: 'uvit',
  stage: 'tiny',
  codebook: 64,
  sets: [
    'model.architecture=uvit',
    'model.transformer={codebook_size: 64, vocab_size: 72, num_vq_tokens: 16, hidden_size: 32, in_channels: 16, block_out_channels: [16], ' +
      `num_res_blocks: 1, block_num_heads: 2, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, encoder_hidden_size: ${CLIP_DIM}, ` +
      `cond_embed_dim: ${CLIP_POOLED}, micro_cond_encode_dim: 4, micro_cond_embed_dim: 20, default_micro_conds: [64, 64, 0, 0, 6], ` +
      'hidden_dropout: 0.1, attention_dropout: 0.1}',
    ...SYNTHETIC_CACHES_WITH_EMA,
  ],
  async dataset(parent, name, shards) {
    const dir = datasetDir(parent, name);
    await writeSyntheticCaches(dir, {
      shards,
      gridH: 4,
      gridW: 4,
      codebookSize: 64,
      dim: CLIP_DIM,
      pooledDim: CLIP_POOLED,
    });
    return dir;
  },
};

export const BYT5_DIM = 256; // byt5-tiny's width, which the sampler encodes prompts with

/** The superres512 stage: a low-res (4x4, base VQ) and a high-res (8x8) token cache side by side with the text. */
export const SUPERRES: MuseVariant = {
  name: 'superres512',
  stage: 'superres512',
  codebook: 32,
  sets: [
    'model.architecture=superres',
    'model.vq=builtin',
    'model.lowres_vq=builtin',
    'model.text_encoder=byt5-tiny',
    'model.transformer={codebook_size: 32, num_vq_tokens: 64, lowres_codebook_size: 16, num_lowres_tokens: 16, hidden_size: 32, ' +
      `num_hidden_layers: 1, num_lowres_layers: 1, num_attention_heads: 4, intermediate_size: 64, encoder_hidden_size: ${BYT5_DIM}, ` +
      'attention: multi_axis, block_size: 4, grid_size: 2, hidden_dropout: 0.1, attention_dropout: 0.1}',
    'data.vq_id=vq-high',
    'data.lowres_vq_id=vq-low',
    'data.text_id=text-test',
    ...COMMON,
    'training.gradient_accumulation_steps=1',
    'ema.enabled=true',
    'ema.decay=0.9',
  ],
  async dataset(parent, name, shards) {
    const dir = datasetDir(parent, name);
    await writeSyntheticCaches(dir, { shards, vqId: 'vq-low', gridH: 4, gridW: 4, codebookSize: 16, dim: BYT5_DIM });
    await writeSyntheticCaches(dir, { shards, vqId: 'vq-high', gridH: 8, gridW: 8, codebookSize: 32, noText: true });
    return dir;
  },
};

/** Combined T5 + CLIP conditioning: byt5-tiny (256 wide) as the T5 part, the CLIP fixture's widths as the CLIP part. */
export const COMBINED: MuseVariant & {
  dataset(parent: string, name: string, shards: Record<number, number>, o?: { noClip?: boolean }): Promise<string>;
} = {
  name: 'combined T5+CLIP',
  stage: 'tiny',
  codebook: 64,
  sets: [
    'model.text_encoder=byt5-tiny,clip:/nowhere',
    'data.text_id=t5-test,clip-test',
    'data.vq_id=vq-test',
    'model.transformer.codebook_size=64',
    'model.transformer.num_vq_tokens=16',
    'model.transformer.max_position_embeddings=16',
    'model.transformer.hidden_size=32',
    'model.transformer.num_hidden_layers=1',
    'model.transformer.num_attention_heads=2',
    'model.transformer.intermediate_size=64',
    `model.transformer.encoder_hidden_size=${BYT5_DIM + CLIP_DIM}`,
    'model.transformer.add_cond_embeds=true',
    `model.transformer.cond_embed_dim=${CLIP_POOLED}`,
    ...COMMON,
    'training.log_every=1',
  ],
  async dataset(parent: string, name: string, shards: Record<number, number>, o: { noClip?: boolean } = {}) {
    const dir = datasetDir(parent, name);
    const base = { shards, gridH: 4, gridW: 4, codebookSize: 64 };
    await writeSyntheticCaches(dir, { ...base, textId: 't5-test', dim: BYT5_DIM });
    // The CLIP cache's texts differ in length from the T5 one's, as real tokenizers' do.
    if (!o.noClip)
      await writeSyntheticCaches(dir, {
        ...base,
        textId: 'clip-test',
        dim: CLIP_DIM,
        pooledDim: CLIP_POOLED,
        textLength: (s, p) => 2 + ((s + 2 * p) % 3),
      });
    return dir;
  },
};
