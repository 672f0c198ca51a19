/**
 * One VQGAN training step (taming-transformers' VQLPIPSWithDiscriminator recipe on the open-muse VQGAN):
 *   loss = rec (l1|l2) + perceptual_weight * LPIPS-style(x, xrec) + codebook_weight * codebook/commitment
 *          + d_weight * disc_factor * g_loss            (GAN part only from step disc_start on)
 * with d_weight = clamp(||∇_W nll|| / (||∇_W g|| + 1e-4), 0, 1e4) * disc_weight, W = decoder.conv_out.weight.
 *
 * One forward and one backward pass through the VQGAN per micro-batch, also with the GAN on: the loss head
 * (reconstruction, perceptual, discriminator) runs on a detached copy of xrec, its gradient dL/dxrec is formed
 * with the adaptive weight, and the VQGAN backward pass gets it through sum(xrec * dL/dxrec). The last layer's
 * gradients are the vector-Jacobian products of its one conv, from the decoder's `decoder.norm_out` tap (that
 * conv's input).
 * The discriminator (its own AdamW) is then trained on the same batch with the pre-update reconstruction.
 * Optional start (autoencoderWarmupSteps, codebookInit): a few unquantized autoencoder steps, then the codebook
 * set by k-means++ on that step's encoder latents (the default codebook starts near the origin, away from the latents).
 * Randomness comes only from the seed and the step (dead-code restart / k-means++ picks); the VQGAN's dropout, if set in
 * its config, uses tf's global RNG and would make resume inexact — the trainer refuses dropout > 0.
 */
import * as tf from '@tensorflow/tfjs';
import { CHECKPOINT_FILES, checkpointPath } from '../../run-folder/index.ts';
import { existsSync } from 'node:fs';
import { VQGAN, derived, type Tap } from '../../models/vqgan/index.ts';
import { openCheckpoint, saveSafetensors, type CheckpointReader } from '../../models/safetensors.ts';
import { AdamW, EMA, allreduceGrads, clipByGlobalNorm, type EmaOptions } from '../core/index.ts';
import { CodebookUsage, codeCounts, restartCodes } from './codebook-usage.ts';
import { SINGLE_PROCESS, type Communicator } from '../../runtime/mpi.ts';
import { initCodebookFromLatents } from './codebook-init.ts';
import { PatchDiscriminator, type DiscriminatorConfig } from './discriminator.ts';
import {
  CODEBOOK_INITS,
  GAN_LOSS_KINDS,
  RECONSTRUCTION_KINDS,
  adaptiveWeightTensor,
  discriminatorLoss,
  generatorLoss,
  lastLayerGradNorms,
  reconstructionLoss,
  type CodebookInit,
  type GanLossKind,
  type ReconstructionKind,
} from './losses.ts';
import { quotedChoices } from '../../util/suggest.ts';
import type { VggPerceptual } from './perceptual.ts';
import { deriveSeed } from '../data/random.ts';
import { readData, readScalars } from '../../runtime/read.ts';
import { detachFromTape } from '../../runtime/detach.ts';

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface GanSettings {
  config?: Partial<DiscriminatorConfig>;
  /** Default 'hinge'. */
  loss?: GanLossKind;
  /** First step (0-based) with the GAN terms and discriminator updates. Default 0. */
  start?: number;
  /** taming disc_weight (default 0.8) and disc_factor (default 1). */
  weight?: number;
  factor?: number;
}

export interface VqganTrainerOptions {
  seed: number;
  reconstruction?: ReconstructionKind;
  codebookWeight?: number;
  perceptual?: VggPerceptual;
  perceptualWeight?: number;
  gan?: GanSettings;
  /** Default taming's Adam (0.5, 0.9), eps 1e-8, no weight decay. Used for the discriminator too. */
  optimizer?: Partial<AdamWSettings>;
  /** clip_grad_norm_ max norm (null: no clipping, the norm is still reported). */
  maxGradNorm?: number | null;
  ema?: EmaOptions;
  /** Restart codes unused for this many steps (0: never). */
  restartAfterSteps?: number;
  /** Steps over which codebook_usage counts a code as used (default restartAfterSteps, else 100). */
  usageWindow?: number;
  /**
   * Steps (from 0) trained as a plain autoencoder, decoder(encoder(x)) without quantization or codebook loss, so
   * the encoder learns useful latents before codes are fitted to them. Default 0.
   */
  autoencoderWarmupSteps?: number;
  /**
   * 'kmeans++': at the first quantized step (autoencoderWarmupSteps), before its update, every code is set by
   * k-means++ (+ Lloyd iterations) on the encoder latents of that step's batch. Default 'none' (random codes).
   */
  codebookInit?: CodebookInit;
  /**
   * Data-parallel ranks: each trains its share of the global batch's micro-batches; generator and discriminator
   * gradients, loss parts and code counts are summed over the ranks (default: this process alone).
   */
  comm?: Communicator;
}

export interface VqganStepMetrics {
  loss: number;
  rec_loss: number;
  codebook_loss: number;
  perceptual_loss?: number;
  g_loss?: number;
  d_loss?: number;
  d_weight?: number;
  grad_norm: number;
  d_grad_norm?: number;
  /** Fraction of codes chosen within the last usageWindow steps. */
  codebook_usage: number;
  /** exp(entropy) of the code frequencies in this step's batch. */
  perplexity: number;
  dead_codes_restarted: number;
  /** False when the gradient norm was not finite and the update was skipped. */
  updated: boolean;
}

export interface ValidationMetrics {
  rec_loss: number;
  codebook_loss: number;
  perceptual_loss?: number;
}

export interface MicroResult {
  grads: Map<string, tf.Tensor>;
  rec: number;
  codebook: number;
  perceptual?: number;
  g?: number;
  dWeight?: number;
  ids: Int32Array;
  /** Detached reconstruction for the discriminator step (GAN on only). */
  xrec?: tf.Tensor4D;
}

const LAST_LAYER = 'decoder.conv_out.weight';
const STATE_VERSION = '1';

/** Same values, no link to the gradient tape (no op connects it to the variables). */
const detach = detachFromTape;

/** Scalars and ids kept from inside a gradient closure, read once the tape is done (no reads inside it). */
interface MicroTensors {
  ids?: tf.Tensor;
  rec?: tf.Tensor;
  codebook?: tf.Tensor;
  perceptual?: tf.Tensor;
  g?: tf.Tensor;
  dWeight?: tf.Tensor;
}

export class VqganTrainer {
  readonly optimizer: AdamW;
  readonly ema?: EMA;
  readonly discriminator?: PatchDiscriminator;
  readonly discOptimizer?: AdamW;
  readonly usage: CodebookUsage;
  private readonly vars: Map<string, tf.Variable>;
  private readonly o: Required<Omit<VqganTrainerOptions, 'perceptual' | 'gan' | 'ema' | 'optimizer' | 'comm'>> & {
    optimizer: AdamWSettings;
  };
  private readonly comm: Communicator;
  private static readonly KMEANS_ITERATIONS = 5;
  private readonly gan?: Required<Omit<GanSettings, 'config'>>;

  constructor(
    readonly vq: VQGAN,
    private readonly opts: VqganTrainerOptions,
  ) {
    if (!Number.isInteger(opts.seed)) throw new Error(`VqganTrainer: seed must be an integer, got ${opts.seed}`);
    if (vq.config.dropout > 0)
      throw new Error(
        'VqganTrainer: VQGAN dropout > 0 uses an unseeded RNG (resume would not be exact); set dropout 0',
      );
    const restartAfterSteps = opts.restartAfterSteps ?? 0;
    if (!Number.isInteger(restartAfterSteps) || restartAfterSteps < 0)
      throw new Error(`VqganTrainer: restartAfterSteps must be an integer >= 0, got ${restartAfterSteps}`);
    const warmup = opts.autoencoderWarmupSteps ?? 0;
    if (!Number.isInteger(warmup) || warmup < 0)
      throw new Error(`VqganTrainer: autoencoderWarmupSteps must be an integer >= 0, got ${warmup}`);
    const init = opts.codebookInit ?? 'none';
    if (!CODEBOOK_INITS.includes(init))
      throw new Error(`VqganTrainer: codebookInit must be ${quotedChoices(CODEBOOK_INITS)}, got ${String(init)}`);
    this.o = {
      seed: opts.seed,
      reconstruction: opts.reconstruction ?? 'l1',
      codebookWeight: opts.codebookWeight ?? 1,
      perceptualWeight: opts.perceptualWeight ?? 1,
      maxGradNorm: opts.maxGradNorm ?? null,
      restartAfterSteps,
      usageWindow: opts.usageWindow ?? (restartAfterSteps || 100),
      autoencoderWarmupSteps: warmup,
      codebookInit: init,
      optimizer: { beta1: 0.5, beta2: 0.9, eps: 1e-8, weightDecay: 0, ...opts.optimizer },
    };
    if (!RECONSTRUCTION_KINDS.includes(this.o.reconstruction))
      throw new Error(
        `VqganTrainer: reconstruction must be ${quotedChoices(RECONSTRUCTION_KINDS)}, got ${String(this.o.reconstruction)}`,
      );
    this.vars = vq.namedVariables();
    this.optimizer = new AdamW(this.vars, this.o.optimizer);
    if (opts.ema) this.ema = new EMA(this.vars, opts.ema);
    if (opts.gan) {
      this.gan = {
        loss: opts.gan.loss ?? 'hinge',
        start: opts.gan.start ?? 0,
        weight: opts.gan.weight ?? 0.8,
        factor: opts.gan.factor ?? 1,
      };
      if (!GAN_LOSS_KINDS.includes(this.gan.loss))
        throw new Error(
          `VqganTrainer: gan.loss must be ${quotedChoices(GAN_LOSS_KINDS)}, got ${String(this.gan.loss)}`,
        );
      this.discriminator = new PatchDiscriminator(
        { inputChannels: vq.config.numChannels, ...opts.gan.config },
        opts.seed + 1,
      );
      this.discOptimizer = new AdamW(this.discriminator.variables, this.o.optimizer);
    }
    this.usage = new CodebookUsage(vq.config.numEmbeddings, 0);
    this.comm = opts.comm ?? SINGLE_PROCESS;
  }

  /** Whether the GAN terms are on at this (0-based) step. */
  ganActive(step: number): boolean {
    return !!this.gan && step >= this.gan.start;
  }

  /**
   * One optimisation step at 0-based `step` with learning rate `lr` on the global batch `pixels`, whole or as its
   * equal micro-batches in order (gradient accumulation: their gradients averaged). With N data-parallel ranks the
   * micro-batches split evenly over the ranks (rank r trains the r-th N-th of the list), and the average runs over
   * all of them; codebook initialisation and dead-code restarts read every micro-batch, so every rank makes the same
   * picks. The caller keeps ownership of the pixel tensors.
   */
  async step(pixels: tf.Tensor4D | tf.Tensor4D[], step: number, lr: number): Promise<VqganStepMetrics> {
    const batches = Array.isArray(pixels) ? pixels : [pixels];
    if (!batches.length) throw new Error('VqganTrainer.step: no micro-batches');
    if (!Number.isInteger(step) || step < 0)
      throw new Error(`VqganTrainer.step: step must be an integer >= 0, got ${step}`);
    // Any side that is a multiple of the downsampling factor (random crops train the convolutional VQGAN on parts).
    const f = derived(this.vq.config).reductionFactor;
    for (const b of batches) {
      if (
        b.rank !== 4 ||
        b.shape[1] % f !== 0 ||
        b.shape[2] % f !== 0 ||
        b.shape[1] < f ||
        b.shape[2] < f ||
        b.shape[3] !== this.vq.config.numChannels
      ) {
        throw new Error(
          `VqganTrainer.step: pixels must be [B, H, W, ${this.vq.config.numChannels}] with H and W multiples of the downsampling factor ${f}, got [${b.shape}]`,
        );
      }
    }
    const ganOn = this.ganActive(step);
    const quantize = step >= this.o.autoencoderWarmupSteps;
    const { rank, size } = this.comm;
    if (batches.length % size !== 0) {
      throw new Error(
        `VqganTrainer.step: ${batches.length} micro-batches do not split evenly over ${size} ranks (training.batch_size must divide by ranks x gradient_accumulation_steps)`,
      );
    }
    const per = batches.length / size;
    const mine = batches.slice(rank * per, (rank + 1) * per);
    if (this.o.codebookInit === 'kmeans++' && step === this.o.autoencoderWarmupSteps)
      await this.initCodebook(batches, step);
    let sums = new Map<string, tf.Tensor>();
    const parts = { rec: 0, codebook: 0, perceptual: 0, g: 0, dWeight: 0 };
    const ids: Int32Array[] = [];
    const recons: tf.Tensor4D[] = [];
    try {
      for (const x of mine) {
        const r = await this.microGradients(x, ganOn, quantize);
        for (const [n, g] of r.grads) {
          const prev = sums.get(n);
          sums.set(n, prev ? tf.add(prev, g) : g);
          if (prev) {
            prev.dispose();
            g.dispose();
          }
        }
        parts.rec += r.rec;
        parts.codebook += r.codebook;
        parts.perceptual += r.perceptual ?? 0;
        parts.g += r.g ?? 0;
        parts.dWeight += r.dWeight ?? 0;
        ids.push(r.ids);
        if (r.xrec) recons.push(r.xrec);
      }
      const n = batches.length;
      if (size > 1) {
        const keys = ['rec', 'codebook', 'perceptual', 'g', 'dWeight'] as const;
        const reduced = await allreduceGrads(
          sums,
          this.comm,
          keys.map((k) => parts[k]),
        );
        tf.dispose([...sums.values()]);
        sums = reduced.grads;
        keys.forEach((k, i) => {
          parts[k] = reduced.extra[i];
        });
      }
      const mean = new Map<string, tf.Tensor>();
      for (const [name, s] of sums) mean.set(name, n === 1 ? s : tf.div(s, n));
      if (n !== 1) for (const s of sums.values()) s.dispose();
      sums.clear();
      const { grads, norm } = await clipByGlobalNorm(mean, this.o.maxGradNorm);
      tf.dispose([...mean.values()]);
      const updated = Number.isFinite(norm);
      if (updated) {
        this.optimizer.apply(grads, lr);
        this.ema?.update(this.optimizer.step);
      }
      tf.dispose([...grads.values()]);

      const metrics: VqganStepMetrics = {
        loss: 0,
        rec_loss: parts.rec / n,
        codebook_loss: parts.codebook / n,
        grad_norm: norm,
        codebook_usage: 0,
        perplexity: 0,
        dead_codes_restarted: 0,
        updated,
      };
      metrics.loss = metrics.rec_loss + this.o.codebookWeight * metrics.codebook_loss;
      if (this.opts.perceptual) {
        metrics.perceptual_loss = parts.perceptual / n;
        metrics.loss += this.o.perceptualWeight * metrics.perceptual_loss;
      }
      if (ganOn) {
        metrics.g_loss = parts.g / n;
        metrics.d_weight = parts.dWeight / n;
        metrics.loss += metrics.d_weight * this.gan!.factor * metrics.g_loss;
        const d = await this.discriminatorStep(mine, recons, lr, n);
        metrics.d_loss = d.loss;
        metrics.d_grad_norm = d.norm;
      }

      const counts = new Float64Array(this.usage.numCodes);
      for (const a of ids)
        codeCounts(a, this.usage.numCodes).forEach((c, i) => {
          counts[i] += c;
        });
      this.comm.allreduceF64(counts, 'sum');
      metrics.perplexity = this.usage.recordCounts(counts, step);
      if (this.o.restartAfterSteps > 0) metrics.dead_codes_restarted = await this.restartDead(batches, step);
      metrics.codebook_usage = this.usage.usage(step, this.o.usageWindow);
      return metrics;
    } finally {
      tf.dispose([...sums.values()]);
      tf.dispose(recons);
    }
  }

  /**
   * Gradients of one micro-batch w.r.t. the VQGAN parameters (one forward + backward), without updating.
   * The caller disposes `grads` and `xrec`.
   */
  async microGradients(x: tf.Tensor4D, ganOn: boolean, quantize = true): Promise<MicroResult> {
    const names = [...this.vars.keys()];
    const list = [...this.vars.values()];
    const out: Partial<MicroResult> = {};
    const kept: MicroTensors = {};
    const { value, grads } = tf.variableGrads(() => {
      let hIn: tf.Tensor4D | undefined;
      const tap: Tap | undefined = ganOn
        ? (name, a) => {
            if (name === 'decoder.norm_out') hIn = tf.keep(detach(a as tf.Tensor4D));
          }
        : undefined;
      const o = quantize ? this.vq.forward(x, { training: true, tap }) : this.autoencode(x, tap);
      kept.ids = tf.keep(o.ids);
      kept.codebook = tf.keep(o.codebookLoss);
      const cb = tf.mul(o.codebookLoss, this.o.codebookWeight);
      if (!ganOn) {
        const head = this.nll(x, o.reconstruction);
        kept.rec = tf.keep(head.rec);
        if (head.perceptual) kept.perceptual = tf.keep(head.perceptual);
        return tf.add(head.total, cb) as tf.Scalar;
      }
      try {
        const xrec = tf.keep(detach(o.reconstruction));
        out.xrec = xrec;
        const u = this.ganHead(x, xrec, hIn!, kept);
        return tf.add(tf.sum(tf.mul(o.reconstruction, u)), cb) as tf.Scalar;
      } finally {
        hIn?.dispose();
      }
    }, list);
    value.dispose();
    // variableGrads keys by tf variable name; map back to parameter names.
    const byParam = new Map<string, tf.Tensor>();
    names.forEach((n, i) => {
      const g = grads[list[i].name];
      if (g) byParam.set(n, g);
    });
    try {
      const fields = (['rec', 'codebook', 'perceptual', 'g', 'dWeight'] as const).filter((k) => kept[k]);
      const values = await readScalars(fields.map((k) => kept[k]!));
      fields.forEach((k, i) => {
        out[k] = values[i];
      });
      out.ids = Int32Array.from(await readData<'int32'>(kept.ids!));
    } catch (err) {
      tf.dispose([...byParam.values(), ...(out.xrec ? [out.xrec] : [])]);
      throw err;
    } finally {
      tf.dispose(Object.values(kept));
    }
    return {
      grads: byParam,
      rec: out.rec!,
      codebook: out.codebook!,
      perceptual: out.perceptual,
      g: out.g,
      dWeight: out.dWeight,
      ids: out.ids!,
      xrec: out.xrec,
    };
  }

  /** Warm-up forward: decoder(encoder(x)) with no quantization; ids (for usage stats only) and a zero codebook loss. */
  private autoencode(
    x: tf.Tensor4D,
    tap?: Tap,
  ): { reconstruction: tf.Tensor4D; ids: tf.Tensor2D; codebookLoss: tf.Scalar } {
    const latents = this.vq.encoder(x, { training: true, tap });
    const ids = tf.tidy(() => this.vq.quantize(detach(latents)).ids);
    return { reconstruction: this.vq.decoder(latents, { training: true, tap }), ids, codebookLoss: tf.scalar(0) };
  }

  /** Sets the whole codebook by k-means++ on this step's encoder latents; codes count as used from `step`. */
  private async initCodebook(batches: tf.Tensor4D[], step: number): Promise<void> {
    const d = this.vq.config.zChannels;
    const latents = tf.tidy(() => tf.concat(batches.map((b) => this.vq.encoder(b).reshape([-1, d]))) as tf.Tensor2D);
    try {
      await initCodebookFromLatents(
        this.vq.param('quantize.embedding.weight'),
        latents,
        deriveSeed(this.o.seed, 44, step),
        VqganTrainer.KMEANS_ITERATIONS,
      );
    } finally {
      latents.dispose();
    }
    this.usage.lastUsed.fill(step);
  }

  private nll(x: tf.Tensor4D, xrec: tf.Tensor4D): { total: tf.Scalar; rec: tf.Scalar; perceptual?: tf.Scalar } {
    const rec = reconstructionLoss(x, xrec, this.o.reconstruction);
    if (!this.opts.perceptual) return { total: rec, rec };
    const perceptual = this.opts.perceptual.loss(x, xrec);
    return { total: tf.add(rec, tf.mul(perceptual, this.o.perceptualWeight)) as tf.Scalar, rec, perceptual };
  }

  /**
   * dL/dxrec for L = nll + d_weight * disc_factor * g, on the detached reconstruction; keeps the metric parts
   * (as tensors, read later). Tensors made here are not connected to the VQGAN variables: the inputs are detached.
   */
  private ganHead(x: tf.Tensor4D, xrec: tf.Tensor4D, hIn: tf.Tensor4D, kept: MicroTensors): tf.Tensor4D {
    const disc = this.discriminator!;
    const nll = tf.valueAndGrad((xr: tf.Tensor) => {
      const h = this.nll(x, xr as tf.Tensor4D);
      kept.rec = tf.keep(h.rec);
      if (h.perceptual) kept.perceptual = tf.keep(h.perceptual);
      return h.total;
    })(xrec);
    const g = tf.valueAndGrad((xr: tf.Tensor) => generatorLoss(disc.apply(xr as tf.Tensor4D)))(xrec);
    kept.g = tf.keep(g.value);
    const w = detach(this.vq.param(LAST_LAYER)) as tf.Tensor4D;
    const [nA, nB] = lastLayerGradNorms(hIn, w, nll.grad as tf.Tensor4D, g.grad as tf.Tensor4D);
    const dWeight = tf.keep(adaptiveWeightTensor(nA, nB, this.gan!.weight));
    kept.dWeight = dWeight;
    tf.dispose([w, nA, nB]);
    return tf.add(nll.grad, tf.mul(g.grad, tf.mul(dWeight, this.gan!.factor))) as tf.Tensor4D;
  }

  /** The discriminator's update on this rank's micro-batches, averaged over all `total` micro-batches of every rank. */
  private async discriminatorStep(
    real: tf.Tensor4D[],
    fake: tf.Tensor4D[],
    lr: number,
    total: number,
  ): Promise<{ loss: number; norm: number }> {
    const disc = this.discriminator!;
    const names = [...disc.variables.keys()];
    const list = [...disc.variables.values()];
    const sums = new Map<string, tf.Tensor>();
    const losses: tf.Tensor[] = [];
    real.forEach((x, i) => {
      const { value, grads } = tf.variableGrads(
        () =>
          tf.mul(discriminatorLoss(disc.apply(x), disc.apply(fake[i]), this.gan!.loss), this.gan!.factor) as tf.Scalar,
        list,
      );
      losses.push(value);
      names.forEach((n, j) => {
        const g = grads[list[j].name];
        if (!g) return;
        const prev = sums.get(n);
        sums.set(n, prev ? tf.add(prev, g) : g);
        if (prev) {
          prev.dispose();
          g.dispose();
        }
      });
    });
    let loss = (await readScalars(losses)).reduce((a, b) => a + b, 0);
    tf.dispose(losses);
    let summed = sums;
    if (this.comm.size > 1) {
      const reduced = await allreduceGrads(sums, this.comm, [loss]);
      tf.dispose([...sums.values()]);
      summed = reduced.grads;
      loss = reduced.extra[0];
    }
    const mean = new Map<string, tf.Tensor>();
    for (const [n, s] of summed) mean.set(n, total === 1 ? s : tf.div(s, total));
    if (total !== 1) tf.dispose([...summed.values()]);
    const { grads, norm } = await clipByGlobalNorm(mean, this.o.maxGradNorm);
    tf.dispose([...mean.values()]);
    if (Number.isFinite(norm)) this.discOptimizer!.apply(grads, lr);
    tf.dispose([...grads.values()]);
    return { loss: loss / total, norm };
  }

  /** Re-initialises codes unused for restartAfterSteps to encoder outputs of this batch (after the update). */
  private async restartDead(batches: tf.Tensor4D[], step: number): Promise<number> {
    const dead = this.usage.dead(step, this.o.restartAfterSteps);
    if (!dead.length) return 0;
    const d = this.vq.config.zChannels;
    const latents = tf.tidy(() => tf.concat(batches.map((b) => this.vq.encoder(b).reshape([-1, d]))) as tf.Tensor2D);
    try {
      await restartCodes(this.vq.param('quantize.embedding.weight'), latents, dead, this.o.seed, step);
    } finally {
      latents.dispose();
    }
    for (const c of dead) this.usage.lastUsed[c] = step;
    return dead.length;
  }

  /** Reconstruction metrics without updates (EMA weights when EMA is on). The caller keeps the pixels. */
  async validate(pixels: tf.Tensor4D): Promise<ValidationMetrics> {
    const run = async (): Promise<ValidationMetrics> => {
      const parts = tf.tidy(() => {
        const o = this.vq.forward(pixels);
        const h = this.nll(pixels, o.reconstruction);
        return [h.rec, o.codebookLoss, ...(h.perceptual ? [h.perceptual] : [])];
      });
      const [rec, codebook, perceptual] = await readScalars(parts);
      tf.dispose(parts);
      const m: ValidationMetrics = { rec_loss: rec, codebook_loss: codebook };
      if (parts.length > 2) m.perceptual_loss = perceptual;
      return m;
    };
    return this.ema ? this.ema.withEmaWeights(run) : run();
  }

  /**
   * Checkpoint into `dir`: vqgan/ (VQGAN.save: config.json + model.safetensors), ema/ (same layout, EMA
   * weights), optimizer.safetensors, discriminator.safetensors + disc_optimizer.safetensors (GAN on), and
   * trainer_state.safetensors (codebook last-used steps). Every file is written atomically.
   */
  async save(dir: string): Promise<void> {
    await this.vq.save(checkpointPath(dir, 'vqgan'));
    if (this.ema) await this.ema.withEmaWeights(() => this.vq.save(checkpointPath(dir, 'ema')));
    await saveOptimizer(checkpointPath(dir, 'optimizer'), this.optimizer);
    if (this.discriminator && this.discOptimizer) {
      const t = this.discriminator.torchTensors();
      try {
        await saveSafetensors(checkpointPath(dir, 'discriminator'), t, {
          format: 'pt',
          config: JSON.stringify(this.discriminator.config),
        });
      } finally {
        tf.dispose(Object.values(t));
      }
      await saveOptimizer(checkpointPath(dir, 'discOptimizer'), this.discOptimizer);
    }
    await saveSafetensors(
      checkpointPath(dir, 'vqganState'),
      { codebook_last_used: { dtype: 'I32', shape: [this.usage.numCodes], data: this.usage.lastUsed } },
      { version: STATE_VERSION, seed: String(this.o.seed) },
    );
  }

  /** Restores what save() wrote, into this trainer's existing variables, so training continues exactly. */
  async load(dir: string): Promise<void> {
    const need = (name: keyof typeof CHECKPOINT_FILES) => {
      const p = checkpointPath(dir, name);
      if (!existsSync(p)) throw new Error(`VQGAN checkpoint ${dir}: missing ${CHECKPOINT_FILES[name]}`);
      return p;
    };
    const saved = await VQGAN.fromSafetensors(need('vqgan'));
    try {
      if (JSON.stringify(saved.config) !== JSON.stringify(this.vq.config))
        throw new Error(`VQGAN checkpoint ${dir}: its VQGAN config differs from the trainer's`);
      for (const [n, v] of saved.namedVariables()) this.vars.get(n)!.assign(v);
    } finally {
      saved.dispose();
    }
    if (this.ema) {
      const ema = await VQGAN.fromSafetensors(need('ema'));
      try {
        await this.ema.loadState(new Map<string, tf.Tensor>(ema.namedVariables()));
      } finally {
        ema.dispose();
      }
    }
    await loadOptimizer(need('optimizer'), this.optimizer);
    if (this.discriminator && this.discOptimizer) {
      await withReader(need('discriminator'), (r) => this.discriminator!.load(r, checkpointPath(dir, 'discriminator')));
      await loadOptimizer(need('discOptimizer'), this.discOptimizer);
    }
    await withReader(need('vqganState'), async (r) => {
      const meta = r.metadata();
      if (meta.version !== STATE_VERSION)
        throw new Error(`${checkpointPath(dir, 'vqganState')}: unsupported version ${meta.version}`);
      const t = await r.read('codebook_last_used');
      this.usage.restore(t.data);
    });
  }

  /** A trainer whose VQGAN (and everything else) comes from a checkpoint written by save(). */
  static async resume(dir: string, opts: VqganTrainerOptions): Promise<VqganTrainer> {
    const vq = await VQGAN.fromSafetensors(checkpointPath(dir, 'vqgan'));
    const trainer = new VqganTrainer(vq, opts);
    await trainer.load(dir);
    return trainer;
  }

  /** Frees the optimizers, EMA and discriminator (not the VQGAN, which the caller owns). */
  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
    this.discriminator?.dispose();
    this.discOptimizer?.dispose();
  }
}

async function saveOptimizer(file: string, opt: AdamW): Promise<void> {
  const state = opt.stateTensors();
  try {
    await saveSafetensors(file, Object.fromEntries(state), { step: String(opt.step) });
  } finally {
    tf.dispose([...state.values()]);
  }
}

async function withReader<T>(file: string, fn: (r: CheckpointReader) => Promise<T>): Promise<T> {
  const r = await openCheckpoint(file);
  try {
    return await fn(r);
  } finally {
    await r.close();
  }
}

async function loadOptimizer(file: string, opt: AdamW): Promise<void> {
  await withReader(file, async (r) => {
    const step = Number(r.metadata().step);
    if (!Number.isInteger(step) || step < 0) throw new Error(`${file}: missing or bad 'step' metadata`);
    await opt.loadState(r, step);
  });
}
