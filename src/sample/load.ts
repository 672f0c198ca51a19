// Loads what `muse-train` writes into a checkpoint directory (the trainer/sampler contract):
//   transformer/{config.json,model.safetensors}   raw weights
//   ema/{config.json,model.safetensors}           EMA weights (when EMA is on; used by default)
//   vq/{config.json,model.safetensors}            the VQGAN (a copy; absent for 'builtin')
//   sampling.json                                 VQ model, text encoder, grid, default prompts
// sampling.json's `vq` is 'builtin' or a folder relative to the checkpoint (older checkpoints: an absolute path).
// A run directory is accepted too: <run>/checkpoints/latest names the checkpoint, else the highest
// <run>/checkpoints/step-XXXXXXXX/ that has a trainer_state.json.
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadTokenModel, type TokenModel } from '../models/token-model.ts';
import { VQGAN } from '../models/vqgan/index.ts';
import { loadTextEncoders, type TextEncoder } from '../models/text/index.ts';
import { loadVq, parseVqSpec } from '../models/registry.ts';
import { TRAINER_STATE, assertCheckpointIntact } from './checkpoint-files.ts';

export interface SamplingInfo {
  vq: string;
  text_encoder: string | null;
  text_max_length: number | null;
  class_conditional: boolean;
  resolution: number;
  grid: [number, number];
  prompts: string[];
  /** Super-res checkpoints: the base VQGAN whose tokens they take, and its token grid. */
  lowres_vq?: string;
  lowres_grid?: [number, number];
}

export interface LoadedCheckpoint {
  /** The checkpoint directory actually used. */
  dir: string;
  info: SamplingInfo;
  transformer: TokenModel;
  weights: 'ema' | 'raw';
  vq: VQGAN;
  text: TextEncoder | null;
  dispose(): void;
}

const isDir = async (p: string) => (await stat(p).catch(() => undefined))?.isDirectory() ?? false;

/** The checkpoint directory named by `p` (a checkpoint itself, or a run directory). */
export async function resolveCheckpointDir(p: string): Promise<string> {
  const dir = path.resolve(p);
  if (!(await isDir(dir))) throw new Error(`--checkpoint ${p}: no such directory`);
  if (existsSync(path.join(dir, 'sampling.json'))) return dir;
  const ckpts = path.join(dir, 'checkpoints');
  if (await isDir(ckpts)) {
    const latest = path.join(ckpts, 'latest');
    if (existsSync(latest)) {
      const name = (await readFile(latest, 'utf8')).trim();
      const target = path.resolve(ckpts, name);
      if (!name || !(await isDir(target))) throw new Error(`${latest} names '${name}', which is not a checkpoint directory in ${ckpts}`);
      return target;
    }
    const steps = (await readdir(ckpts))
      .filter((n) => /^step-\d+$/.test(n) && existsSync(path.join(ckpts, n, TRAINER_STATE)))
      .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
    if (steps.length) return path.join(ckpts, steps[steps.length - 1]);
    throw new Error(`--checkpoint ${p}: ${ckpts} has no 'latest' file and no step-XXXXXXXX/ with a trainer_state.json`);
  }
  throw new Error(`--checkpoint ${p}: neither a checkpoint (no sampling.json) nor a run directory (no checkpoints/ folder)`);
}

/** Reads and checks sampling.json. */
export async function readSamplingInfo(dir: string): Promise<SamplingInfo> {
  const file = path.join(dir, 'sampling.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as Error).message})`);
  }
  const j = raw as Record<string, unknown>;
  const bad = (key: string, what: string) => new Error(`${file}: "${key}" must be ${what}, got ${JSON.stringify(j[key])}`);
  if (typeof j.vq !== 'string' || !j.vq) throw bad('vq', '"builtin" or a VQGAN folder (relative to the checkpoint)');
  if (j.text_encoder !== null && typeof j.text_encoder !== 'string') throw bad('text_encoder', 'a text encoder spec or null');
  const tml = j.text_max_length ?? null;
  if (tml !== null && !(Number.isInteger(tml) && (tml as number) > 0)) throw bad('text_max_length', 'a positive integer or null');
  if (typeof j.class_conditional !== 'boolean') throw bad('class_conditional', 'true or false');
  if (!Number.isInteger(j.resolution) || (j.resolution as number) < 1) throw bad('resolution', 'a positive integer');
  const grid = j.grid as unknown[];
  if (!Array.isArray(grid) || grid.length !== 2 || !grid.every((v) => Number.isInteger(v) && (v as number) > 0)) throw bad('grid', '[h, w] of positive integers');
  const prompts = j.prompts ?? [];
  if (!Array.isArray(prompts) || !prompts.every((s) => typeof s === 'string')) throw bad('prompts', 'a list of strings');
  if (!j.class_conditional && j.text_encoder === null) throw new Error(`${file}: a text model needs "text_encoder" (it is null and class_conditional is false)`);
  return {
    vq: j.vq,
    text_encoder: j.text_encoder as string | null,
    text_max_length: tml as number | null,
    class_conditional: j.class_conditional,
    resolution: j.resolution as number,
    grid: [grid[0] as number, grid[1] as number],
    prompts: prompts as string[],
    ...(typeof j.lowres_vq === 'string' && Array.isArray(j.lowres_grid) ? { lowres_vq: j.lowres_vq, lowres_grid: [Number(j.lowres_grid[0]), Number(j.lowres_grid[1])] as [number, number] } : {}),
  };
}

/** Checks the files (as --resume does), then loads the transformer (EMA unless `ema: false` or absent), the VQ model and the text encoder. */
export async function loadCheckpoint(p: string, opts: { ema?: boolean } = {}): Promise<LoadedCheckpoint> {
  const dir = await resolveCheckpointDir(p);
  await assertCheckpointIntact(dir);
  const info = await readSamplingInfo(dir);
  const emaDir = path.join(dir, 'ema');
  const useEma = opts.ema !== false && existsSync(path.join(emaDir, 'model.safetensors'));
  const modelDir = useEma ? emaDir : path.join(dir, 'transformer');
  if (!existsSync(modelDir)) throw new Error(`${dir}: no transformer/ folder with the model weights`);
  const transformer = await loadTokenModel(modelDir);
  const cleanup: Array<{ dispose(): void }> = [transformer];
  try {
    const vqSpec = parseVqSpec(info.vq);
    const vq = vqSpec.kind === 'builtin' ? (await loadVq('builtin', info.resolution)).model : await loadCheckpointVq(dir, info.vq);
    cleanup.push(vq);
    const text = info.text_encoder ? await loadTextEncoders(info.text_encoder, { maxLength: info.text_max_length ?? undefined }) : null;
    if (text) cleanup.push(text);
    checkConsistent(dir, info, transformer, vq, text);
    return { dir, info, transformer, weights: useEma ? 'ema' : 'raw', vq, text, dispose: () => cleanup.forEach((m) => m.dispose()) };
  } catch (err) {
    cleanup.forEach((m) => m.dispose());
    throw err;
  }
}

/** The VQGAN named by sampling.json, resolved against the checkpoint folder. */
async function loadCheckpointVq(dir: string, spec: string): Promise<VQGAN> {
  const vqDir = path.resolve(dir, spec);
  if (!(await isDir(vqDir))) {
    throw new Error(`checkpoint ${dir}: its VQGAN ${vqDir} (sampling.json "vq": ${JSON.stringify(spec)}) is not there; ` +
      (path.isAbsolute(spec) ? 'this older checkpoint names it by absolute path: put the VQGAN folder back there, or copy it into the checkpoint as vq/ and set "vq": "vq"' : 'the checkpoint is incomplete'));
  }
  return VQGAN.fromSafetensors(vqDir);
}

function checkConsistent(dir: string, info: SamplingInfo, t: TokenModel, vq: VQGAN, text: TextEncoder | null): void {
  const c = t.config;
  const [h, w] = info.grid;
  const fail = (why: string) => {
    throw new Error(`checkpoint ${dir}: ${why}`);
  };
  if (h * w !== c.num_vq_tokens) fail(`sampling.json grid ${h}x${w} does not match the transformer's num_vq_tokens ${c.num_vq_tokens}`);
  if (h !== w) fail(`grid ${h}x${w}: only square token grids are supported`);
  if (vq.tokensPerImage !== c.num_vq_tokens) fail(`the VQ model makes ${vq.tokensPerImage} tokens per image, the transformer expects ${c.num_vq_tokens}`);
  if (c.codebook_size > vq.config.numEmbeddings) fail(`transformer codebook_size ${c.codebook_size} > VQ codebook ${vq.config.numEmbeddings}`);
  if (info.class_conditional && !c.num_classes) fail('sampling.json says class_conditional but the transformer has no num_classes');
  if (text && c.add_cross_attention && text.dim !== c.encoder_hidden_size) fail(`text encoder width ${text.dim} != transformer encoder_hidden_size ${c.encoder_hidden_size}`);
  if (text && c.add_cond_embeds && text.pooledDim !== c.cond_embed_dim) fail(`text encoder pooled width ${text.pooledDim ?? 'none'} != transformer cond_embed_dim ${c.cond_embed_dim}`);
}
