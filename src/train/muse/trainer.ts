/**
 * One MUSE training step on token-cache batches: masking, conditioning dropout, masked cross-entropy with
 * label smoothing, gradient accumulation over micro-batches, global-norm clipping, AdamW (no decay on biases,
 * norms and embeddings), EMA. Every random draw is derived from (seed, step) and drawn for the whole global batch
 * (dropout: per piece of it), so a step computes the same thing whether or not the run was stopped and resumed
 * before it, and at any number of ranks and accumulation steps.
 */
import { tf } from '../../runtime/backend.ts';
import { readScalar } from '../../runtime/read.ts';
import { assertGpuBufferFits } from '../../runtime/webgpu.ts';
import { maskSchedule, type MaskSchedule } from '../../models/schedules.ts';
import type { TokenModel } from '../../models/token-model.ts';
import { sliceBatch, type Batch } from '../data/batch.ts';
import { IGNORE_INDEX } from '../../models/transformer/loss.ts';
import { SINGLE_PROCESS, assertAgreement, type Communicator } from '../../runtime/mpi.ts';
import crc32 from 'crc-32';
import type { EmptyText } from '../data/empty-text.ts';
import { SeededRandom, deriveSeed } from '../data/random.ts';
import { AdamW, EMA, GradAccumulator, allreduceGrads, clipByGlobalNorm, defaultNoDecay } from '../core/index.ts';
import { configAdamW, configEmaOptions, configLearningRate } from '../config/options.ts';
import type { TrainConfig } from '../config/schema.ts';
import { maskTokens } from './masking.ts';
import { dropClasses, dropConditioning } from './cond-dropout.ts';

export class NonFiniteLossError extends Error {}

export interface MuseStepMetrics {
  loss: number;
  lr: number;
  mask_rate: number;
  grad_norm: number;
  /** Forward + backward and optimizer (+ EMA) time of the step, ms. */
  compute_ms: number;
  optimizer_ms: number;
  /** Data parallel: time in the gradient all-reduce, ms. */
  allreduce_ms?: number;
}

/** Random-stream tags (deriveSeed) of the training draws. */
const TAG_MASK = 10;
const TAG_DROPOUT = 11;
const TAG_SELF_COND = 12;

export class MuseTrainer {
  readonly optimizer: AdamW;
  readonly ema?: EMA;
  private readonly schedule: MaskSchedule;
  /** Data parallel: the first batch read was compared across ranks. */
  private dataAgreed = false;

  constructor(
    readonly model: TokenModel,
    private readonly cfg: TrainConfig,
    private readonly emptyText?: EmptyText,
    /**
     * Data parallel ranks: every rank reads and prepares (masks, drops conditioning) the same whole global batch,
     * computes the gradients of its fixed rows, and the gradients are summed across ranks.
     */
    private readonly comm: Communicator = SINGLE_PROCESS,
  ) {
    this.optimizer = new AdamW(model.variables, { ...configAdamW(cfg), noDecay: defaultNoDecay });
    const ema = configEmaOptions(cfg);
    if (ema) this.ema = new EMA(model.variables, ema);
    this.schedule = maskSchedule(cfg.training.mask_schedule);
  }

  /** Learning rate of optimisation step `step` (0-based). */
  lrAt(step: number): number {
    return configLearningRate(this.cfg, step);
  }

  /**
   * Inputs of a batch: masked ids, labels and conditioning, drawn for the whole batch from the random streams of
   * `counter` (the step for training: the same draws whatever the split over ranks and micro-batches).
   */
  private prepare(batch: Batch, counter: number, train: boolean) {
    const cfg = this.model.config;
    const t = this.cfg.training;
    const rng = new SeededRandom(deriveSeed(t.seed, TAG_MASK, counter));
    const [B, N] = batch.imageShape;
    if (N !== cfg.num_vq_tokens)
      throw new Error(
        `the token cache has ${N} tokens per image, model.transformer.num_vq_tokens is ${cfg.num_vq_tokens}`,
      );
    const masked = maskTokens(batch.imageIds, B, N, cfg.mask_token_id, rng, this.schedule, t.min_masking_rate);
    if (train && this.emptyText && t.cond_dropout_prob > 0)
      dropConditioning(batch, this.emptyText, t.cond_dropout_prob, rng);
    if (train && 'null_class' in cfg && cfg.null_class && batch.classIds && t.cond_dropout_prob > 0) {
      dropClasses(batch.classIds, cfg.num_classes!, t.cond_dropout_prob, rng);
    }
    return { masked, B, N };
  }

  private tensors(
    batch: Batch & { lowresIds?: Int32Array; lowresShape?: [number, number] },
    inputIds: Int32Array,
    labels: Int32Array,
    B: number,
    N: number,
  ) {
    const ids = tf.tensor2d(inputIds, [B, N], 'int32');
    const lab = tf.tensor2d(labels, [B, N], 'int32');
    const ehs = batch.textHidden && batch.textShape ? tf.tensor3d(batch.textHidden, batch.textShape) : undefined;
    const mask =
      batch.textMask && batch.textShape
        ? tf.tensor2d(Int32Array.from(batch.textMask), [B, batch.textShape[1]], 'int32')
        : undefined;
    const condEmbeds = batch.pooled && batch.pooledShape ? tf.tensor2d(batch.pooled, batch.pooledShape) : undefined;
    const classIds = batch.classIds ? tf.tensor1d(batch.classIds, 'int32') : undefined;
    // The super-res stage's low-res tokens (src/train/superres/paired-loader.ts).
    const lowresIds =
      batch.lowresIds && batch.lowresShape ? tf.tensor2d(batch.lowresIds, batch.lowresShape, 'int32') : undefined;
    const all = ([ids, lab, ehs, mask, condEmbeds, classIds, lowresIds] as Array<tf.Tensor | undefined>).filter(
      (x): x is tf.Tensor => !!x,
    );
    return { ids, lab, ehs, mask, condEmbeds, classIds, lowresIds, all };
  }

  /** On webgpu the biggest activations (logits, attention scores) must each fit in one GPU buffer. */
  private checkGpuBuffers(B: number, N: number): void {
    const c = this.model.config;
    const T = N + (c.num_classes ? 1 : 0);
    const setting =
      'the micro-batch, training.batch_size / (ranks x gradient_accumulation_steps): raise training.gradient_accumulation_steps to keep the update';
    assertGpuBufferFits(T * c.vocab_size * 4, B, `the logits of ${B} x ${T} tokens over ${c.vocab_size} ids`, setting);
    assertGpuBufferFits(
      c.num_attention_heads * T * T * 4,
      B,
      `the attention scores of ${B} x ${c.num_attention_heads} heads x ${T}²`,
      setting,
    );
  }

  /**
   * One optimisation step over a global batch of training.batch_size samples: masks and conditioning dropout are
   * drawn for the whole batch; rank r of n takes rows [r·B/n, (r+1)·B/n) and runs them as
   * gradient_accumulation_steps micro-batches; each micro-batch's gradient is weighted by its share of the whole
   * batch's masked tokens, and the weighted sums are added over the ranks: the mean loss and gradient of the
   * global batch at any number of ranks and accumulation steps.
   */
  async step(batch: Batch, step: number): Promise<MuseStepMetrics> {
    const t0 = performance.now();
    const { rank, size } = this.comm;
    const accum = this.cfg.training.gradient_accumulation_steps;
    const acc = new GradAccumulator();
    let lossSum = 0;
    try {
      if (!this.dataAgreed) this.agreeOnData(batch);
      const { masked, B, N } = this.prepare(batch, step, true);
      const pieces = size * accum;
      if (B % pieces !== 0) {
        throw new Error(
          `a batch of ${B} samples does not split into ${size} ranks x ${accum} accumulation steps = ${pieces} equal micro-batches (training.batch_size must divide by ${pieces})`,
        );
      }
      const rows = B / pieces;
      const maskedTotal = countMasked(masked.labels, 0, B * N);
      for (let micro = 0; micro < accum; micro++) {
        const piece = rank * accum + micro;
        const mine = rowsOf(batch, masked.inputIds, masked.labels, piece * rows, (piece + 1) * rows);
        const weight = countMasked(mine.labels, 0, mine.labels.length) / Math.max(1, maskedTotal);
        this.checkGpuBuffers(rows, N);
        const x = this.tensors(mine.batch, mine.inputIds, mine.labels, rows, N);
        let selfCond: tf.Tensor | undefined;
        try {
          selfCond = this.selfConditioning(x, step);
          // Dropout draws per piece of the batch (different rows on every rank and micro-batch).
          const dropoutSeed = deriveSeed(this.cfg.training.seed, TAG_DROPOUT, step * pieces + piece);
          const { loss, grads } = this.model.lossAndGrads(x.ids, x.lab, x.ehs, x.mask, {
            condEmbeds: x.condEmbeds,
            classIds: x.classIds,
            lowresIds: x.lowresIds,
            selfCond,
            training: true,
            dropoutSeed,
            labelSmoothing: this.cfg.training.label_smoothing,
          });
          acc.add(grads, weight);
          lossSum += weight * (await readScalar(loss, { dispose: true }));
        } finally {
          tf.dispose(x.all);
          selfCond?.dispose();
        }
      }
      let summed = acc.takeSum();
      let allreduceMs: number | undefined;
      if (size > 1) {
        const reduced = await allreduceGrads(summed, this.comm, [lossSum]);
        tf.dispose([...summed.values()]);
        summed = reduced.grads;
        lossSum = reduced.extra[0];
        allreduceMs = reduced.ms;
      }
      const loss = lossSum;
      const { grads, norm } = await clipByGlobalNorm(summed, this.cfg.training.max_grad_norm);
      tf.dispose([...summed.values()]);
      const t1 = performance.now();
      try {
        if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
          throw new NonFiniteLossError(
            `step ${step + 1}: the loss is ${loss} and the gradient norm ${norm}; stopping without applying this update ` +
              '(try a lower optimizer.lr, more lr_scheduler.warmup_steps or training.max_grad_norm)',
          );
        }
        const lr = this.lrAt(step);
        this.optimizer.apply(grads, lr);
        this.ema?.update(step + 1);
        const rate = masked.maskRates.reduce((s, r) => s + r, 0) / masked.maskRates.length;
        return {
          loss,
          lr,
          mask_rate: rate,
          grad_norm: norm,
          compute_ms: t1 - t0,
          optimizer_ms: performance.now() - t1,
          ...(allreduceMs !== undefined ? { allreduce_ms: allreduceMs } : {}),
        };
      } finally {
        tf.dispose([...grads.values()]);
      }
    } finally {
      acc.dispose();
    }
  }

  /** Ranks started on different caches, data.path or shards would read different batches: refused before any update. */
  private agreeOnData(batch: Batch): void {
    this.dataAgreed = true;
    if (this.comm.size === 1) return;
    let h = crc32.str(batch.keys.join('\n'));
    h = crc32.buf(new Uint8Array(batch.imageIds.buffer, batch.imageIds.byteOffset, batch.imageIds.byteLength), h);
    if (batch.textHidden)
      h = crc32.buf(
        new Uint8Array(batch.textHidden.buffer, batch.textHidden.byteOffset, batch.textHidden.byteLength),
        h,
      );
    assertAgreement(
      this.comm,
      'the first batch (sample keys, tokens, text states): are the caches, data.path and shards the same on every rank?',
      h >>> 0,
    );
  }

  /**
   * Self-conditioning (Bit Diffusion; model config self_conditioning): for half of the steps (drawn from the
   * step's stream, the same for every micro-batch and rank) a first, gradient-free pass predicts the tokens, and its probabilities are the second
   * pass's extra input; otherwise none. Undefined when the model has no self-conditioning.
   */
  private selfConditioning(x: ReturnType<MuseTrainer['tensors']>, counter: number): tf.Tensor | undefined {
    const cfg = this.model.config;
    if (!('self_conditioning' in cfg) || !cfg.self_conditioning) return undefined;
    if (!(new SeededRandom(deriveSeed(this.cfg.training.seed, TAG_SELF_COND, counter)).next() < 0.5)) return undefined;
    return tf.tidy(() => {
      const logits = this.model.forward(x.ids, x.ehs, x.mask, { condEmbeds: x.condEmbeds, classIds: x.classIds });
      const [b, n] = logits.shape;
      return tf.softmax(tf.slice(logits, [0, 0, 0], [b, n, cfg.codebook_size]));
    });
  }

  /** Mean masked-token loss over `batches` without updates (masks drawn from a fixed validation stream). */
  async validationLoss(batches: Batch[]): Promise<number> {
    let sum = 0;
    for (const [i, batch] of batches.entries()) {
      const { masked, B, N } = this.prepare(batch, 0x7fff0000 + i, false);
      const x = this.tensors(batch, masked.inputIds, masked.labels, B, N);
      try {
        const { logits, loss } = this.model.forwardWithLoss(x.ids, x.lab, x.ehs, x.mask, {
          condEmbeds: x.condEmbeds,
          classIds: x.classIds,
          lowresIds: x.lowresIds,
        });
        logits.dispose();
        sum += await readScalar(loss, { dispose: true });
      } finally {
        tf.dispose(x.all);
      }
    }
    return sum / Math.max(1, batches.length);
  }

  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
  }
}

/** Masked positions (labels not IGNORE_INDEX) in labels[lo, hi). */
function countMasked(labels: Int32Array, lo: number, hi: number): number {
  let n = 0;
  for (let i = lo; i < hi; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}

/** Rows [lo, hi) of a prepared batch (the super-res stage's low-res tokens too) with their masked ids and labels. */
function rowsOf(
  batch: Batch & { lowresIds?: Int32Array; lowresShape?: [number, number] },
  inputIds: Int32Array,
  labels: Int32Array,
  lo: number,
  hi: number,
) {
  if (lo === 0 && hi === batch.size) return { batch, inputIds, labels };
  const N = batch.imageShape[1];
  const part: Batch & { lowresIds?: Int32Array; lowresShape?: [number, number] } = sliceBatch(batch, lo, hi);
  if (batch.lowresIds && batch.lowresShape) {
    const n = batch.lowresShape[1];
    part.lowresIds = batch.lowresIds.subarray(lo * n, hi * n);
    part.lowresShape = [hi - lo, n];
  }
  return { batch: part, inputIds: inputIds.subarray(lo * N, hi * N), labels: labels.subarray(lo * N, hi * N) };
}
