/**
 * The MUSE transformer stages (imagenet, cc12m, base256, base512, tiny) as a StageRunner: token-cache
 * loader (train shards) and a validation loader (held-out shards), the transformer, MuseTrainer, and the
 * checkpoint the sampler reads (names: src/run-folder/names.ts): the transformer, its EMA, the optimizer,
 * copies of the VQGAN (unless 'builtin'), of the super-res stage's base VQGAN and of the text encoder folders
 * (the tokens mean nothing without them, and a copied or moved run folder must still sample), and sampling.json
 * naming those copies relative to the checkpoint.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../../runtime/backend.ts';
import { createTokenModel, type TokenModel } from '../../models/token-model.ts';
import { openCheckpoint, saveSafetensors } from '../../models/safetensors.ts';
import { absoluteVqSpec, vqReductionFactor } from '../../models/registry.ts';
import { mapTextEncoderFolders } from '../../models/text/index.ts';
import {
  CHECKPOINT_FILES,
  checkpointPath,
  copyModelFolder,
  runPaths,
  writeSamplingInfo,
  type SamplingInfo,
} from '../../run-folder/index.ts';
import { openTokenDataset, type Batch, type LoaderState, type TokenDataset } from '../data/loader.ts';
import { listShards } from '../data/shard-data.ts';
import type { TrainConfig } from '../config/schema.ts';
import type { ArtefactImage, ResumePoint, StageRunner } from '../run/loop.ts';
import { resolveTextCacheIds, resolveVqCacheId } from './cache-ids.ts';
import { absoluteTextEncoderSpec } from '../../models/text/index.ts';
import { checkCompatibility } from './compatibility.ts';
import { openCombinedTextDataset } from '../data/combined-text.ts';
import { MuseTrainer } from './trainer.ts';
import { openPairedDataset } from '../superres/paired-loader.ts';
import { SINGLE_PROCESS, type Communicator } from '../../runtime/mpi.ts';
import { assertBatchSplits, tensorsChecksum } from '../core/index.ts';

export type { SamplingInfo } from '../../run-folder/index.ts';

export interface MuseRunnerOptions {
  config: TrainConfig;
  /** Dataset folders (data.path resolved). */
  datasetDirs: string[];
  runDir: string;
  /** Data root whose index lists opt-outs not applied yet (those samples are never read). */
  dataRoot?: string;
  /** Renders sample grids (the sampler); absent: no periodic samples. */
  sampleGrid?: (checkpointDir: string, outPng: string) => Promise<void>;
  /** Data-parallel ranks: each trains on its rows of every batch (default: this process alone). */
  comm?: Communicator;
}

/** Where a checkpoint keeps its copy of the VQGAN; sampling.json names it relative to the checkpoint. */
export const CHECKPOINT_VQ_DIR = CHECKPOINT_FILES.vq;

export class MuseRunner implements StageRunner {
  readonly samplesPerStep: number;
  readonly tokensPerSample: number;
  readonly artefactEvery: number;
  /** There is something to sample (prompts or class ids, not the super-res stage): else no grids, not even at the end. */
  private readonly samples: boolean;

  private constructor(
    private readonly opts: MuseRunnerOptions,
    readonly model: TokenModel,
    readonly trainer: MuseTrainer,
    private readonly loader: TokenDataset,
    private readonly loaderOpts: Parameters<typeof openTokenDataset>[0],
    private readonly openLoader: (o: Parameters<typeof openTokenDataset>[0]) => Promise<TokenDataset>,
    private readonly validationShards: number[],
    private readonly info: SamplingInfo,
    private readonly ranks: number,
  ) {
    const t = opts.config.training;
    this.samplesPerStep = t.batch_size;
    this.tokensPerSample = model.config.num_vq_tokens;
    const s = opts.config.sampling;
    // The super-res stage samples only behind a base model (muse-sample --superres): no periodic grids.
    const superres = opts.config.model.architecture === 'superres';
    this.samples = !!opts.sampleGrid && !superres && (s.prompts.length > 0 || s.class_ids.length > 0);
    this.artefactEvery = this.samples ? t.sample_every : 0;
  }

  static async create(opts: MuseRunnerOptions): Promise<MuseRunner> {
    const cfg = opts.config;
    const comm = opts.comm ?? SINGLE_PROCESS;
    assertBatchSplits(cfg, comm.size);
    const [first] = opts.datasetDirs;
    const vqId = await resolveVqCacheId(first, cfg.model.vq, cfg.data.vq_id);
    const textIds = cfg.model.text_encoder
      ? await resolveTextCacheIds(first, cfg.model.text_encoder, cfg.data.text_id)
      : [];
    const textId = textIds[0];
    const all = await listShards(first, vqId);
    const held = new Set(cfg.data.validation_shards);
    for (const s of held)
      if (!all.includes(s))
        throw new Error(
          `data.validation_shards: shard ${s} has no token cache in ${first} (cached: ${all.join(', ') || 'none'})`,
        );
    const trainShards = cfg.data.train_shards ?? (held.size ? all.filter((s) => !held.has(s)) : undefined);
    if (trainShards && !trainShards.length)
      throw new Error(`no training shards left in ${first} after holding out ${[...held].join(', ')}`);
    // Every rank reads every global batch (the loader's position is the global one) and trains its rows of it.
    const loaderOpts = {
      datasetDirs: opts.datasetDirs,
      weights: cfg.data.weights ?? undefined,
      vqId,
      textId,
      shards: trainShards,
      batchSize: cfg.training.batch_size,
      seed: cfg.training.seed,
      shuffleBuffer: cfg.data.shuffle_buffer,
      textMaxLength: cfg.data.text_max_length ?? undefined,
      classIds: cfg.model.transformer.num_classes != null ? true : undefined,
      dataRoot: opts.dataRoot,
    };
    // superres512: the high-res cache (model.vq) read beside the base VQ's low-res cache (model.lowres_vq).
    let openLoader = openTokenDataset;
    // Two text encoders (T5 + CLIP): both caches read per batch and packed into one input (data/combined-text.ts).
    if (textIds.length === 2) openLoader = (o) => openCombinedTextDataset(o, [textIds[0], textIds[1]]);
    let lowres: { spec: string; grid: [number, number] } | undefined;
    if (cfg.model.architecture === 'superres') {
      const lowVqId = await resolveVqCacheId(first, cfg.model.lowres_vq!, cfg.data.lowres_vq_id);
      openLoader = (o) => openPairedDataset(o, lowVqId);
      const n = Number(cfg.model.transformer.num_lowres_tokens ?? 256);
      const side = Math.round(Math.sqrt(n));
      lowres = { spec: absoluteVqSpec(cfg.model.lowres_vq!), grid: [side, side] };
    }
    const loader = await openLoader(loaderOpts);
    const model = createTokenModel(cfg.model.architecture, cfg.model.transformer, { seed: cfg.training.seed });
    const empty = textId ? await loader.emptyText() : undefined;
    try {
      await checkCompatibility({
        config: cfg,
        model,
        datasetDir: first,
        vqId,
        shard: (trainShards ?? all)[0],
        textIds,
        empty,
      });
    } catch (err) {
      model.dispose();
      throw err;
    }
    const trainer = new MuseTrainer(model, cfg, empty, comm);
    const side = Math.round(Math.sqrt(model.config.num_vq_tokens));
    const info: SamplingInfo = {
      vq: absoluteVqSpec(cfg.model.vq),
      text_encoder: cfg.model.text_encoder ? absoluteTextEncoderSpec(cfg.model.text_encoder) : null,
      text_max_length: cfg.data.text_max_length,
      class_conditional: model.config.num_classes != null,
      resolution: side * (await vqReductionFactor(cfg.model.vq)),
      grid: [side, side],
      prompts: cfg.sampling.prompts,
      ...(lowres ? { lowres_vq: lowres.spec, lowres_grid: lowres.grid } : {}),
    };
    return new MuseRunner(opts, model, trainer, loader, loaderOpts, openLoader, [...held], info, comm.size);
  }

  async restore(from: ResumePoint): Promise<void> {
    const weights = await openCheckpoint(checkpointPath(from.dir, 'transformer'));
    try {
      await this.model.params.load(weights);
    } finally {
      await weights.close();
    }
    if (this.trainer.ema) {
      const ema = await openCheckpoint(checkpointPath(from.dir, 'ema'));
      try {
        await this.trainer.ema.loadState(ema);
      } finally {
        await ema.close();
      }
    }
    const optim = await openCheckpoint(checkpointPath(from.dir, 'optimizer'));
    try {
      await this.trainer.optimizer.loadState(optim, Number(from.state.optimizer_step));
    } finally {
      await optim.close();
    }
    await this.loader.restore(from.state.loader as LoaderState);
  }

  async trainStep(step: number): Promise<Record<string, number>> {
    const t0 = performance.now();
    const batch = await this.loader.next();
    const dataMs = performance.now() - t0;
    const m = await this.trainer.step(batch, step);
    return { ...m, data_ms: Math.round(dataMs * 100) / 100, epoch: batch.epoch };
  }

  async validate(): Promise<Record<string, number>> {
    if (!this.validationShards.length) return {};
    const cfg = this.opts.config;
    // A fresh, fixed-seed reader of the held-out shards: every validation sees the same batches, of one rank's
    // micro-batch size (what fits in memory; rank 0 validates alone).
    const t = cfg.training;
    const batchSize = t.batch_size / (this.ranks * t.gradient_accumulation_steps);
    const val = await this.openLoader({
      ...this.loaderOpts,
      batchSize,
      shards: this.validationShards,
      seed: 0,
      shuffleBuffer: 0,
      dropLast: false,
    });
    const batches: Batch[] = [];
    for (let i = 0; i < cfg.training.validation_batches; i++) {
      const b = await val.next();
      if (b.epoch > 0) break;
      batches.push(b);
    }
    const run = () => this.trainer.validationLoss(batches);
    const loss = this.trainer.ema ? await this.trainer.ema.withEmaWeights(run) : await run();
    return { val_loss: loss };
  }

  async writeCheckpoint(dir: string): Promise<Record<string, unknown>> {
    await this.model.save(checkpointPath(dir, 'transformer'));
    if (this.trainer.ema) await this.trainer.ema.withEmaWeights(() => this.model.save(checkpointPath(dir, 'ema')));
    const optim = this.trainer.optimizer.stateTensors();
    try {
      await saveSafetensors(checkpointPath(dir, 'optimizer'), Object.fromEntries(optim));
    } finally {
      tf.dispose([...optim.values()]);
    }
    await writeSamplingInfo(dir, await copyModelsInto(dir, this.info));
    return { loader: this.loader.state(), optimizer_step: this.trainer.optimizer.step };
  }

  async artefacts(step: number, final: boolean, checkpoint: string | null): Promise<ArtefactImage[]> {
    if (!this.samples || !this.opts.sampleGrid || !checkpoint) return [];
    const file = runPaths(this.opts.runDir).artefact('samples', step, final);
    await this.opts.sampleGrid(checkpoint, file);
    return [{ tag: 'samples', file }];
  }

  weightsChecksum(): Promise<number> {
    return tensorsChecksum(this.model.variables);
  }

  dispose(): void {
    this.trainer.dispose();
    this.model.dispose();
  }
}

/**
 * sampling.json for the checkpoint `dir`: the VQGANs and the text encoder folders are copied into it and named
 * relative to it (the built-in models need no copy).
 */
async function copyModelsInto(dir: string, info: SamplingInfo): Promise<SamplingInfo> {
  const out = { ...info };
  if (info.vq !== 'builtin') {
    await copyModelFolder(info.vq, checkpointPath(dir, 'vq'), 'model.vq');
    out.vq = CHECKPOINT_FILES.vq;
  }
  if (info.lowres_vq && info.lowres_vq !== 'builtin') {
    await copyModelFolder(info.lowres_vq, checkpointPath(dir, 'lowresVq'), 'model.lowres_vq');
    out.lowres_vq = CHECKPOINT_FILES.lowresVq;
  }
  if (info.text_encoder) {
    const taken = new Set<string>();
    out.text_encoder = await mapTextEncoderFolders(info.text_encoder, async (src) => {
      // Training reads text caches only: a run may name an encoder folder that is not on this machine. Its
      // checkpoints then keep the absolute path, and sample once the folder is there.
      if (!existsSync(src)) return src;
      // Each under its own folder name (encoder ids are made from it); a second folder of the same name gets a suffix.
      let name = path.basename(src);
      for (let i = 1; taken.has(name); i++) name = `${path.basename(src)}-${i}`;
      taken.add(name);
      const rel = path.join(CHECKPOINT_FILES.textEncoders, name);
      await copyModelFolder(src, path.join(dir, rel), 'model.text_encoder');
      return rel;
    });
  }
  return out;
}
