/**
 * The vqgan stage as a StageRunner: pixel batches from the dataset's shards (validation shards held out),
 * VqganTrainer (data parallel over `comm`: every rank reads the global batch and trains its micro-batches),
 * reconstruction grids. Checkpoint layout (VqganTrainer.save): vqgan/ and ema/ (open-muse
 * VQGAN folders, usable as `muse-data tokenize --vq DIR`), optimizer and discriminator states.
 */
import { runPaths } from '../../run-folder/index.ts';
import { tf } from '../../runtime/backend.ts';
import { VQGAN, configFromJson } from '../../models/vqgan/index.ts';
import { configAdamW, configEmaOptions, configLearningRate } from '../config/options.ts';
import type { TrainConfig } from '../config/schema.ts';
import type { ArtefactImage, ResumePoint, StageRunner } from '../run/loop.ts';
import { listImageShards, openPixelDataset, type PixelDataset, type PixelLoaderState } from './pixel-data.ts';
import { VggPerceptual } from './perceptual.ts';
import { VqganTrainer } from './trainer.ts';
import { reconstructionGrid } from './recon-grid.ts';
import crc32 from 'crc-32';
import { SINGLE_PROCESS, assertAgreement, type Communicator } from '../../runtime/mpi.ts';
import { assertBatchSplits, tensorsChecksum } from '../core/index.ts';

export interface VqganRunnerOptions {
  config: TrainConfig;
  datasetDirs: string[];
  runDir: string;
  /** Data root whose index lists opt-outs not applied yet (those samples are never read). */
  dataRoot?: string;
  /** Data-parallel ranks: each trains its share of every global batch (default: this process alone). */
  comm?: Communicator;
}

/** Images shown in a reconstruction grid. */
const GRID_IMAGES = 8;

export class VqganRunner implements StageRunner {
  readonly samplesPerStep: number;
  readonly tokensPerSample = 0;
  readonly artefactEvery: number;
  /** Data parallel: the first batch read was compared across ranks. */
  private dataAgreed = false;

  private constructor(
    private readonly cfg: TrainConfig,
    private readonly runDir: string,
    readonly vq: VQGAN,
    readonly trainer: VqganTrainer,
    private readonly data: PixelDataset,
    private readonly openValidation: (() => Promise<PixelDataset>) | null,
    /** A fresh reader for reconstruction grids (never the training stream: reading it would change training). */
    private readonly openGridSource: () => Promise<PixelDataset>,
    private readonly comm: Communicator,
  ) {
    const t = cfg.training;
    this.samplesPerStep = t.batch_size;
    this.artefactEvery = cfg.vqgan_training.recon_every;
  }

  static async create(o: VqganRunnerOptions): Promise<VqganRunner> {
    const cfg = o.config;
    const comm = o.comm ?? SINGLE_PROCESS;
    assertBatchSplits(cfg, comm.size);
    if (o.datasetDirs.length !== 1) throw new Error('the vqgan stage reads one dataset (data.path)');
    const [datasetDir] = o.datasetDirs;
    const resolution = Number(cfg.model.vqgan.resolution ?? cfg.data.resolution);
    if (resolution !== cfg.data.resolution)
      throw new Error(`model.vqgan.resolution ${resolution} differs from data.resolution ${cfg.data.resolution}`);
    const vq = VQGAN.create(configFromJson({ ...cfg.model.vqgan, resolution }), cfg.training.seed);
    const all = listImageShards(datasetDir);
    const held = new Set(cfg.data.validation_shards);
    for (const s of held)
      if (!all.includes(s))
        throw new Error(
          `data.validation_shards: ${datasetDir} has no shard ${s} (shards: ${all.join(', ') || 'none'})`,
        );
    const train = cfg.data.train_shards ?? all.filter((s) => !held.has(s));
    const dataRoot = o.dataRoot;
    // The global batch of one update; validation and grids read one rank's micro-batches (what one pass holds).
    const t = cfg.training;
    const data = await openPixelDataset({
      datasetDir,
      dataRoot,
      resolution,
      batchSize: t.batch_size,
      seed: t.seed,
      shards: train,
      flip: cfg.data.random_flip,
      crop: cfg.data.random_crop ?? undefined,
    });
    const fixed = (shards: number[], batchSize: number) => () =>
      openPixelDataset({ datasetDir, dataRoot, resolution, batchSize, seed: 0, shards, flip: false });
    const micro = t.batch_size / (comm.size * t.gradient_accumulation_steps);
    const openValidation = held.size ? fixed([...held], micro) : null;
    const v = cfg.vqgan_training;
    const d = v.discriminator;
    const perceptual = v.perceptual_weights ? await VggPerceptual.fromSafetensors(v.perceptual_weights) : undefined;
    const trainer = new VqganTrainer(vq, {
      seed: cfg.training.seed,
      reconstruction: v.rec_loss,
      codebookWeight: v.codebook_weight,
      perceptual,
      perceptualWeight: v.perceptual_weight,
      gan: d.enabled
        ? { config: { ndf: d.ndf, nLayers: d.n_layers }, loss: d.loss, start: d.start_step, weight: d.weight }
        : undefined,
      optimizer: configAdamW(cfg),
      maxGradNorm: cfg.training.max_grad_norm,
      ema: configEmaOptions(cfg),
      restartAfterSteps: v.restart_dead_codes.enabled ? v.restart_dead_codes.after_steps : 0,
      autoencoderWarmupSteps: v.autoencoder_warmup_steps,
      codebookInit: v.codebook_init,
      comm,
    });
    return new VqganRunner(
      cfg,
      o.runDir,
      vq,
      trainer,
      data,
      openValidation,
      fixed(held.size ? [...held] : train, Math.min(micro, GRID_IMAGES)),
      comm,
    );
  }

  async restore(from: ResumePoint): Promise<void> {
    await this.trainer.load(from.dir);
    this.data.restore(from.state.loader as PixelLoaderState);
  }

  async trainStep(step: number): Promise<Record<string, number>> {
    const t0 = performance.now();
    const batch = await this.data.next();
    if (!this.dataAgreed) {
      this.dataAgreed = true;
      assertAgreement(
        this.comm,
        "the first batch's sample keys: are the shards, data.path and train shards the same on every rank?",
        crc32.str(batch.keys.join('\n')) >>> 0,
      );
    }
    // The global batch as its micro-batches of every rank, in order (the trainer takes this rank's share of them).
    const micro = tf.split(
      batch.pixels,
      this.comm.size * this.cfg.training.gradient_accumulation_steps,
    ) as tf.Tensor4D[];
    batch.pixels.dispose();
    const dataMs = performance.now() - t0;
    const lr = configLearningRate(this.cfg, step);
    try {
      const t1 = performance.now();
      const m = await this.trainer.step(micro, step, lr);
      const out: Record<string, number> = {
        lr,
        data_ms: round(dataMs),
        compute_ms: round(performance.now() - t1),
        epoch: batch.epoch,
      };
      for (const [k, v] of Object.entries(m)) if (typeof v === 'number') out[k] = v;
      if (!m.updated)
        throw new Error(
          `step ${step + 1}: the gradient norm is ${m.grad_norm} (loss ${m.loss}); stopping without applying this update (try a lower optimizer.lr)`,
        );
      return out;
    } finally {
      tf.dispose(micro);
    }
  }

  async validate(): Promise<Record<string, number>> {
    if (!this.openValidation) return {};
    const val = await this.openValidation();
    const sums: Record<string, number> = {};
    let n = 0;
    for (let i = 0; i < this.cfg.training.validation_batches; i++) {
      const b = await val.next();
      try {
        if (b.epoch > 0) break;
        const m = await this.trainer.validate(b.pixels);
        for (const [k, v] of Object.entries(m)) if (typeof v === 'number') sums[k] = (sums[k] ?? 0) + v;
        n++;
      } finally {
        b.pixels.dispose();
      }
    }
    return Object.fromEntries(Object.entries(sums).map(([k, v]) => [`val_${k}`, v / Math.max(1, n)]));
  }

  async writeCheckpoint(dir: string): Promise<Record<string, unknown>> {
    await this.trainer.save(dir);
    return { loader: this.data.state() };
  }

  /** Originals over reconstructions of held-out images (training images when none are held out). */
  async artefacts(step: number, final: boolean): Promise<ArtefactImage[]> {
    const b = await (await this.openGridSource()).next();
    try {
      const n = Math.min(GRID_IMAGES, b.pixels.shape[0]);
      const pixels = tf.slice(b.pixels, [0, 0, 0, 0], [n, -1, -1, -1]) as tf.Tensor4D;
      const file = runPaths(this.runDir).artefact('reconstructions', step, final);
      const draw = () => reconstructionGrid(this.vq, pixels, file);
      await (this.trainer.ema ? this.trainer.ema.withEmaWeights(draw) : draw());
      pixels.dispose();
      return [{ tag: 'reconstructions', file }];
    } finally {
      b.pixels.dispose();
    }
  }

  weightsChecksum(): Promise<number> {
    const d = this.trainer.discriminator;
    return tensorsChecksum(
      new Map<string, tf.Tensor>([
        ...this.vq.namedVariables(),
        ...(d ? [...d.variables].map(([n, v]) => [`discriminator.${n}`, v] as [string, tf.Tensor]) : []),
      ]),
    );
  }

  dispose(): void {
    this.trainer.dispose();
    this.vq.dispose();
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
