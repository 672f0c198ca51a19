// Loads a MUSE checkpoint that `muse-train` wrote (its layout: src/run-folder/names.ts): the transformer (EMA
// weights when present), the VQGAN and the text encoder that sampling.json names relative to the checkpoint
// (older checkpoints: absolute paths). A run directory is accepted too: its verified latest checkpoint is taken.
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { loadTokenModel, type TokenModel } from '../models/token-model.ts';
import { VQGAN } from '../models/vqgan/index.ts';
import { loadTextEncoders, mapTextEncoderFolders, type TextEncoder } from '../models/text/index.ts';
import { loadVq, parseVqSpec } from '../models/registry.ts';
import {
  assertCheckpointIntact,
  checkpointPath,
  findCheckpoint,
  readSamplingInfo,
  resolveInCheckpoint,
  type SamplingInfo,
} from '../run-folder/index.ts';

export { readSamplingInfo, type SamplingInfo };

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

/** The checkpoint directory named by `p` (a checkpoint itself, or a run directory: its verified latest checkpoint). */
export async function resolveCheckpointDir(
  p: string,
  warn: (msg: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
): Promise<string> {
  return findCheckpoint(p, warn);
}

/** Checks the files (as --resume does), then loads the transformer (EMA unless `ema: false` or absent), the VQ model and the text encoder. */
export async function loadCheckpoint(p: string, opts: { ema?: boolean } = {}): Promise<LoadedCheckpoint> {
  const dir = await resolveCheckpointDir(p);
  await assertCheckpointIntact(dir);
  const info = await readSamplingInfo(dir);
  const emaDir = checkpointPath(dir, 'ema');
  const useEma = opts.ema !== false && existsSync(emaDir);
  const modelDir = useEma ? emaDir : checkpointPath(dir, 'transformer');
  if (!existsSync(modelDir))
    throw new Error(`${dir}: no ${checkpointPath('', 'transformer')}/ folder with the model weights`);
  const transformer = await loadTokenModel(modelDir);
  const cleanup: Array<{ dispose(): void }> = [transformer];
  try {
    const vqSpec = parseVqSpec(info.vq);
    const vq =
      vqSpec.kind === 'builtin'
        ? (await loadVq('builtin', info.resolution)).model
        : await loadCheckpointVq(dir, info.vq);
    cleanup.push(vq);
    const textSpec = info.text_encoder
      ? await mapTextEncoderFolders(info.text_encoder, (d) => resolveInCheckpoint(dir, d))
      : null;
    const text = textSpec ? await loadTextEncoders(textSpec, { maxLength: info.text_max_length ?? undefined }) : null;
    if (text) cleanup.push(text);
    checkConsistent(dir, info, transformer, vq, text);
    return {
      dir,
      info,
      transformer,
      weights: useEma ? 'ema' : 'raw',
      vq,
      text,
      dispose: () => cleanup.forEach((m) => m.dispose()),
    };
  } catch (err) {
    cleanup.forEach((m) => m.dispose());
    throw err;
  }
}

/** The VQGAN named by sampling.json, resolved against the checkpoint folder. */
async function loadCheckpointVq(dir: string, spec: string): Promise<VQGAN> {
  const vqDir = resolveInCheckpoint(dir, spec);
  if (!(await isDir(vqDir))) {
    throw new Error(
      `checkpoint ${dir}: its VQGAN ${vqDir} (sampling.json "vq": ${JSON.stringify(spec)}) is not there; ` +
        (isAbsolute(spec)
          ? 'this older checkpoint names it by absolute path: put the VQGAN folder back there, or copy it into the checkpoint as vq/ and set "vq": "vq"'
          : 'the checkpoint is incomplete'),
    );
  }
  return VQGAN.fromSafetensors(vqDir);
}

function checkConsistent(dir: string, info: SamplingInfo, t: TokenModel, vq: VQGAN, text: TextEncoder | null): void {
  const c = t.config;
  const [h, w] = info.grid;
  const fail = (why: string) => {
    throw new Error(`checkpoint ${dir}: ${why}`);
  };
  if (h * w !== c.num_vq_tokens)
    fail(`sampling.json grid ${h}x${w} does not match the transformer's num_vq_tokens ${c.num_vq_tokens}`);
  if (h !== w) fail(`grid ${h}x${w}: only square token grids are supported`);
  if (vq.tokensPerImage !== c.num_vq_tokens)
    fail(`the VQ model makes ${vq.tokensPerImage} tokens per image, the transformer expects ${c.num_vq_tokens}`);
  if (c.codebook_size > vq.config.numEmbeddings)
    fail(`transformer codebook_size ${c.codebook_size} > VQ codebook ${vq.config.numEmbeddings}`);
  if (info.class_conditional && !c.num_classes)
    fail('sampling.json says class_conditional but the transformer has no num_classes');
  if (text && c.add_cross_attention && text.dim !== c.encoder_hidden_size)
    fail(`text encoder width ${text.dim} != transformer encoder_hidden_size ${c.encoder_hidden_size}`);
  if (text && c.add_cond_embeds && text.pooledDim !== c.cond_embed_dim)
    fail(`text encoder pooled width ${text.pooledDim ?? 'none'} != transformer cond_embed_dim ${c.cond_embed_dim}`);
}
