// The masked-token models the MUSE stages train and sample: open-muse's MaskGitTransformer (plain
// transformer with position embeddings), MaskGiTUViT (aMUSEd's U-ViT) and the super-res transformer. All take
// forward(ids, textStates, textMask, opts) and share the config keys the trainer and sampler read.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { MaskGitTransformer, TRANSFORMER_DEFAULTS, transformerConfig } from './transformer/index.ts';
import { EXTENDED_CLASS, REFERENCE_CLASS } from './transformer/config.ts';
import {
  MaskGiTUViT,
  UVIT_DEFAULTS,
  UVIT_LEGACY_KEYS,
  UVIT_OWN_KEYS,
  UVIT_REFERENCE_KEYS,
  uvitConfig,
} from './uvit/index.ts';
import { SUPERRES_DEFAULTS, SuperResTransformer, superResConfig } from './superres/index.ts';
import { configFromDiffusers, isDiffusersUViT } from './uvit/diffusers-names.ts';

export type TokenModel = MaskGitTransformer | MaskGiTUViT | SuperResTransformer;

/** `model.architecture` in a training config (open-muse's key and values). */
export const ARCHITECTURES = ['transformer', 'uvit', 'superres'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

function check(architecture: string): asserts architecture is Architecture {
  if (!(ARCHITECTURES as readonly string[]).includes(architecture)) {
    throw new Error(`unknown model architecture '${architecture}' (expected ${ARCHITECTURES.join(', ')})`);
  }
}

/**
 * The config keys an architecture takes, each with an example value of its type (its default; null where the
 * default is null, which then takes a number; undefined for keys accepted and ignored): the schema a training
 * config's `model.transformer` is checked against.
 */
export function tokenModelKeys(architecture: string): Record<string, unknown> {
  check(architecture);
  if (architecture === 'uvit') {
    const keys: Record<string, unknown> = {};
    for (const k of [...UVIT_REFERENCE_KEYS, ...UVIT_OWN_KEYS, ...UVIT_LEGACY_KEYS])
      keys[k] = (UVIT_DEFAULTS as Record<string, unknown>)[k];
    keys.vocab_size = keys.mask_token_id = 0;
    return keys;
  }
  if (architecture === 'superres') return { ...SUPERRES_DEFAULTS, mask_token_id: 0 };
  return { ...TRANSFORMER_DEFAULTS, vocab_size: 0, mask_token_id: 0 };
}

/** Validates `config` for `architecture` (throws with the model's own message). */
export function checkTokenModelConfig(architecture: string, config: Record<string, unknown>): void {
  check(architecture);
  if (architecture === 'uvit') uvitConfig(config);
  else if (architecture === 'superres') superResConfig(config);
  else transformerConfig(config);
}

export function createTokenModel(
  architecture: string,
  config: Record<string, unknown>,
  opts: { seed?: number | null } = {},
): TokenModel {
  check(architecture);
  if (architecture === 'uvit') return new MaskGiTUViT(config, opts);
  if (architecture === 'superres') return new SuperResTransformer(config, opts);
  return new MaskGitTransformer(config, opts);
}

/** Which class a config.json describes (by its _class_name; MaskGitTransformer when it has none). */
export function architectureOf(config: Record<string, unknown>): Architecture {
  const name = String(config._class_name ?? 'MaskGitTransformer');
  if (name === 'MaskGiTUViT' || name === 'MaskGiTUViT_v2' || isDiffusersUViT(config)) return 'uvit';
  if (name === REFERENCE_CLASS || name === EXTENDED_CLASS) return 'transformer';
  if (name === 'MuseSuperResTransformer') return 'superres';
  throw new Error(
    `model config _class_name '${name}' is not a masked-token model this project knows (${REFERENCE_CLASS}, ${EXTENDED_CLASS}, MaskGiTUViT, UVit2DModel, MuseSuperResTransformer)`,
  );
}

/** Loads a model folder (config.json + safetensors) of either architecture. */
export async function loadTokenModel(dir: string): Promise<TokenModel> {
  const file = path.join(dir, 'config.json');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read model config (${(err as Error).message})`);
  }
  const arch = architectureOf(config);
  if (arch === 'uvit') return MaskGiTUViT.fromSafetensors(dir, { config });
  if (arch === 'superres') return SuperResTransformer.fromSafetensors(dir, { config });
  return MaskGitTransformer.fromSafetensors(dir, { config });
}

export { configFromDiffusers };
