/**
 * Before the first training step: the model against what it will be fed and what will decode its output, each
 * mismatch named with both sides. Without these a wrong codebook trains to the end and fails only when sampling,
 * and a wrong width fails inside a tfjs kernel with shapes and no key.
 */
import { cacheShardPath } from '../../dataset/cache-format.ts';
import { vqCodebookSize } from '../../models/registry.ts';
import type { TokenModel } from '../../models/token-model.ts';
import type { TrainConfig } from '../config/schema.ts';
import { readTable, tokenShard } from '../data/cache-reader.ts';
import type { EmptyText } from '../data/empty-text.ts';

export interface CompatibilityInputs {
  config: TrainConfig;
  model: TokenModel;
  datasetDir: string;
  vqId: string;
  /** A shard of the token cache to look at (its grid, codebook and the ids it holds); none: not checked here. */
  shard?: number;
  textIds: string[];
  /** The text cache's empty-caption states (their width is the cache's), when text-conditioned. */
  empty?: EmptyText;
}

export async function checkCompatibility(o: CompatibilityInputs): Promise<void> {
  const c = o.model.config;
  const fail = (why: string): never => {
    throw new Error(`incompatible model and data: ${why}`);
  };
  const vqCodes = await vqCodebookSize(o.config.model.vq);
  if (c.codebook_size > vqCodes) {
    fail(
      `model.transformer.codebook_size is ${c.codebook_size}, but the VQGAN (model.vq ${o.config.model.vq}) has ${vqCodes} codes: ` +
        `it could not decode what the model samples; set codebook_size to ${vqCodes}`,
    );
  }
  if (o.shard !== undefined) await checkTokens(o, o.shard, vqCodes, fail);
  if (o.empty && c.add_cross_attention && o.empty.dim !== c.encoder_hidden_size) {
    const what =
      o.textIds.length === 2
        ? `the two text caches ${o.textIds.join(' + ')} pack to width ${o.empty.dim} (T5 width + CLIP width)`
        : `the text cache text/${o.textIds[0]} has width ${o.empty.dim}`;
    fail(
      `model.transformer.encoder_hidden_size is ${c.encoder_hidden_size}, but ${what}: set encoder_hidden_size to ${o.empty.dim}`,
    );
  }
  const pooled = o.empty?.pooled?.length ?? 0;
  if (pooled && c.add_cond_embeds && pooled !== c.cond_embed_dim) {
    fail(
      `model.transformer.cond_embed_dim is ${c.cond_embed_dim}, but the text cache's pooled vector has width ${pooled}: set cond_embed_dim to ${pooled}`,
    );
  }
}

/** The cache's grid against num_vq_tokens, and the largest id in one shard against codebook_size. */
async function checkTokens(
  o: CompatibilityInputs,
  shard: number,
  vqCodes: number,
  fail: (why: string) => never,
): Promise<void> {
  const c = o.model.config;
  const file = cacheShardPath(o.datasetDir, 'vq', o.vqId, shard);
  const tokens = tokenShard(await readTable(file), file);
  if (tokens.n !== c.num_vq_tokens) {
    fail(
      `model.transformer.num_vq_tokens is ${c.num_vq_tokens}, but the token cache ${file} has ${tokens.gridH}x${tokens.gridW} = ${tokens.n} tokens per image`,
    );
  }
  let max = -1;
  for (const t of tokens.tokens) if (t > max) max = t;
  if (max >= c.codebook_size) {
    fail(
      `the token cache ${file} holds token id ${max}, but model.transformer.codebook_size is ${c.codebook_size} (ids 0..${c.codebook_size - 1}); ` +
        `set codebook_size to the VQGAN's ${vqCodes}`,
    );
  }
}
