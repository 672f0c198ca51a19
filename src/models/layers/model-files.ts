// A model on disk = config.json + safetensors weights under the reference tensor names.
import type * as tf from '@tensorflow/tfjs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { openCheckpoint, saveSafetensors, type CheckpointReader } from '../safetensors.ts';
import type { ParamStore } from './params.ts';

export interface ModelFilesOptions {
  /** config.json path or the parsed object; default: `config.json` in the directory / next to the file. */
  config?: string | Record<string, unknown>;
}

/**
 * Opens `pathOrDir`: a directory (config.json + model.safetensors, a sharded index, or one .safetensors
 * file) or a weights file (config.json next to it unless `opts.config` says otherwise).
 */
export async function openModelFiles(
  pathOrDir: string,
  opts: ModelFilesOptions = {},
): Promise<{ config: Record<string, unknown>; ckpt: CheckpointReader }> {
  let config = opts.config;
  if (config === undefined || typeof config === 'string') {
    const stat = await fsp.stat(pathOrDir).catch(() => undefined);
    if (!stat) throw new Error(`${pathOrDir}: no such model file or directory`);
    const file = config ?? path.join(stat.isDirectory() ? pathOrDir : path.dirname(pathOrDir), 'config.json');
    try {
      config = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${file}: cannot read model config (${(err as Error).message})`);
    }
  }
  return { config, ckpt: await openCheckpoint(pathOrDir) };
}

/**
 * Opens the files, builds the model from their config (`build` may look at the checkpoint too) and loads its
 * weights by name; a model whose weights do not load is disposed before the error is passed on.
 */
export async function loadModelFiles<M extends { params: ParamStore; dispose(): void }>(
  pathOrDir: string,
  opts: ModelFilesOptions,
  build: (config: Record<string, unknown>, ckpt: CheckpointReader) => M,
  loadOpts?: Parameters<ParamStore['load']>[1],
): Promise<M> {
  const { config, ckpt } = await openModelFiles(pathOrDir, opts);
  try {
    const model = build(config, ckpt);
    try {
      await model.params.load(ckpt, loadOpts);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model;
  } finally {
    await ckpt.close();
  }
}

/** Writes `dir/config.json` and `dir/model.safetensors`. */
export async function saveModelFiles(
  dir: string,
  config: Record<string, unknown>,
  tensors: Record<string, tf.Tensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  await saveSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt', ...metadata });
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}
