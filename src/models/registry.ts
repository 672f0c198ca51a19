/**
 * The model registry: what a model spec names (`parseVqSpec`, the one parser of `model.vq` / `--vq`; text encoder
 * specs: `parseTextEncoderSpec` in text/encoders.ts), and the
 * models tokenize runs, with the id that names their cache folder and the sha256 that pins their weights.
 * Built-ins have no files: their hash is taken over the generated weights (VQGAN) or, for the built-in text
 * encoder whose parameters are not exposed, over its hidden states for a fixed probe text.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { tf } from '../runtime/backend.ts';
import { readData } from '../runtime/read.ts';
import { VQGAN, configFromJson, configToJson, derived, vqganConfig, type VqganConfig } from './vqgan/index.ts';
import { BYT5_TINY_CONFIG, loadTextEncoder, parseTextEncoderSpec, type TextEncoder } from './text/index.ts';

/** Built-in VQGAN: 64 px -> 8x8 = 64 tokens, 256 codes of 16 dims; small enough for wasm in tests. */
export const BUILTIN_VQ_CONFIG: Partial<VqganConfig> = {
  resolution: 64,
  hiddenChannels: 32,
  channelMult: [1, 1, 2, 2],
  numResBlocks: 1,
  zChannels: 16,
  quantizedEmbedDim: 16,
  numEmbeddings: 256,
};
export const BUILTIN_VQ_ID = 'vqgan-tiny-seed0';

/**
 * What a `model.vq` / `--vq` / sampling.json `vq` value names. The ONE parser of that spec: every stage asks it,
 * so a name that works in one place works in all. Built-in: absent, '', 'builtin' or 'vqgan-tiny-seed0'; anything
 * else is a folder holding config.json + safetensors (open-muse names).
 */
export type VqSpec = { kind: 'builtin' } | { kind: 'folder'; dir: string };

export function parseVqSpec(spec: string | undefined | null): VqSpec {
  const s = spec?.trim();
  if (!s || s === 'builtin' || s === BUILTIN_VQ_ID) return { kind: 'builtin' };
  return { kind: 'folder', dir: s };
}

export function isBuiltinVq(spec: string | undefined | null): boolean {
  return parseVqSpec(spec).kind === 'builtin';
}

/** The spec in the form written to sampling.json: 'builtin', or the folder as an absolute path. */
export function absoluteVqSpec(spec: string): string {
  const p = parseVqSpec(spec);
  return p.kind === 'builtin' ? 'builtin' : path.resolve(p.dir);
}

/** The config of the VQGAN `spec` (no weights are read): the built-in's, or a folder's config.json. */
async function vqConfig(spec: string): Promise<VqganConfig> {
  const p = parseVqSpec(spec);
  if (p.kind === 'builtin') return vqganConfig(BUILTIN_VQ_CONFIG);
  const file = path.join(p.dir, 'config.json');
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`model.vq: cannot read ${file} (${(err as Error).message})`);
  }
  return configFromJson(json);
}

/** Pixels per token side of the VQGAN `spec`, from its config (no weights are read). */
export async function vqReductionFactor(spec: string): Promise<number> {
  return derived(await vqConfig(spec)).reductionFactor;
}

/** Codebook size (number of codes) of the VQGAN `spec`, from its config (no weights are read). */
export async function vqCodebookSize(spec: string): Promise<number> {
  return (await vqConfig(spec)).numEmbeddings;
}

export interface LoadedVq {
  id: string;
  model: VQGAN;
  name: string;
  config: Record<string, unknown>;
  weightsSha256: string;
  gridH: number;
  gridW: number;
}

export interface LoadedText {
  id: string;
  encoder: TextEncoder;
  name: string;
  config: Record<string, unknown>;
  weightsSha256: string;
}

/** A built-in spec (see parseVqSpec) -> the seeded tiny VQGAN; else a folder with config.json + safetensors. */
export async function loadVq(spec: string | undefined, imageSize?: number): Promise<LoadedVq> {
  let model: VQGAN;
  let id: string;
  let sha: string;
  let name: string;
  const parsed = parseVqSpec(spec);
  if (parsed.kind === 'builtin') {
    model = VQGAN.create({ ...BUILTIN_VQ_CONFIG, ...(imageSize ? { resolution: imageSize } : {}) }, 0);
    sha = await hashVariables(model.namedVariables());
    id = imageSize && imageSize !== BUILTIN_VQ_CONFIG.resolution ? `${BUILTIN_VQ_ID}-${imageSize}px` : BUILTIN_VQ_ID;
    name = BUILTIN_VQ_ID;
  } else {
    sha = await hashWeightFiles(parsed.dir);
    model = await VQGAN.fromSafetensors(parsed.dir);
    id = `vq-${sha.slice(0, 12)}`;
    name = path.resolve(parsed.dir);
  }
  const side = derived(model.config).latentSize;
  return { id, model, name, config: configToJson(model.config), weightsSha256: sha, gridH: side, gridW: side };
}

const PROBE = 'muse weights fingerprint: a red cube on a blue sphere';

export async function loadText(spec: string): Promise<LoadedText> {
  const parsed = parseTextEncoderSpec(spec);
  const encoder = await loadTextEncoder(spec);
  if (parsed.kind !== 'builtin')
    return {
      id: encoder.id,
      encoder,
      name: path.resolve(parsed.dir),
      config: { kind: encoder.kind, dim: encoder.dim, pooled_dim: encoder.pooledDim ?? 0 },
      weightsSha256: await hashWeightFiles(parsed.dir),
    };
  const out = encoder.encode([PROBE]);
  const h = createHash('sha256').update(Buffer.from((await out.hidden.data()).buffer));
  out.hidden.dispose();
  out.pooled?.dispose();
  return { id: encoder.id, encoder, name: encoder.id, config: { ...BYT5_TINY_CONFIG }, weightsSha256: h.digest('hex') };
}

async function hashVariables(vars: Map<string, tf.Variable>): Promise<string> {
  const h = createHash('sha256');
  for (const name of [...vars.keys()].sort()) {
    const v = vars.get(name)!;
    h.update(`${name}[${v.shape.join(',')}]`);
    const values = await readData<'float32'>(v);
    h.update(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  return h.digest('hex');
}

/** sha256 over the weight files (`*.safetensors`, sorted by name) of a folder, or of one file. */
export async function hashWeightFiles(dirOrFile: string): Promise<string> {
  const st = await stat(dirOrFile).catch(() => undefined);
  if (!st) throw new Error(`${dirOrFile}: no such model folder`);
  const files = st.isDirectory()
    ? (await readdir(dirOrFile))
        .filter((f) => f.endsWith('.safetensors'))
        .sort()
        .map((f) => path.join(dirOrFile, f))
    : [dirOrFile];
  if (files.length === 0) throw new Error(`${dirOrFile}: no .safetensors weights`);
  const h = createHash('sha256');
  for (const f of files) for await (const chunk of createReadStream(f)) h.update(chunk as Buffer);
  return h.digest('hex');
}
