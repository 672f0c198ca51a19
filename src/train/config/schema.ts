/**
 * The training config: every key with its default. A stage file (`configs/<stage>.yaml`) or `--config FILE`
 * is merged over these defaults, then `--set a.b=value` overrides; keys not listed here are refused (with a
 * suggestion), values must have the default's type. `model.transformer` and `model.vqgan` are passed to the
 * models' own config functions, which check them.
 *
 * Section and key names follow open-muse's configs where they have one (experiment, optimizer, lr_scheduler,
 * training.cond_dropout_prob, ...); `data` replaces open-muse's webdataset URLs with our token caches.
 */

import { ARCHITECTURES, type Architecture } from '../../models/token-model.ts';
import { FID_RESIZES, type FidResize } from '../../eval/fid/resize.ts';
import { LR_SCHEDULES, type LrScheduleName } from '../core/lr-schedule.ts';
import {
  CODEBOOK_INITS,
  GAN_LOSS_KINDS,
  RECONSTRUCTION_KINDS,
  type CodebookInit,
  type GanLossKind,
  type ReconstructionKind,
} from '../vqgan/losses.ts';

export const STAGES = ['imagenet', 'cc12m', 'base256', 'base512', 'superres512', 'vqgan', 'tiny'] as const;
export type Stage = (typeof STAGES)[number];

export interface TrainConfig {
  stage: Stage;
  experiment: { name: string; output_dir: string };
  model: {
    /** The VQGAN whose tokens the caches hold (and which decodes samples): 'builtin' or a folder. */
    vq: string;
    /** Text encoder of the caches: 'byt5-tiny', 't5:DIR', 'clip:DIR'; null for class-conditional stages. */
    text_encoder: string | null;
    /**
     * Masked-token model (open-muse's key): 'transformer' = MaskGitTransformer, 'uvit' = MaskGiTUViT (aMUSEd's
     * U-ViT: conv blocks around the transformer, pooled text + micro-conditions by AdaLN, no position embeddings).
     */
    architecture: Architecture;
    /** superres512: the base VQGAN whose (low-res) token cache conditions the super-res model ('builtin' or a folder). */
    lowres_vq: string | null;
    /** The architecture's config (open-muse keys). */
    transformer: Record<string, unknown>;
    /** VQGAN config for the vqgan stage (open-muse config.json keys). */
    vqgan: Record<string, unknown>;
  };
  data: {
    /** Dataset folder(s) holding shards (and token caches for the transformer stages). */
    path: string | string[];
    /** Per dataset of `path`: how often its shards are read per epoch (see the loader). */
    weights: number[] | null;
    /** Token cache ids; default: the ids tokenize gives `model.vq` and `model.text_encoder`. */
    vq_id: string | null;
    text_id: string | null;
    /** superres512: the low-res token cache id; default: the id tokenize gives `model.lowres_vq`. */
    lowres_vq_id: string | null;
    /** Shards held out for validation (and never trained on); train_shards null = all others. */
    validation_shards: number[];
    train_shards: number[] | null;
    shuffle_buffer: number;
    text_max_length: number | null;
    /** vqgan stage: training image side in pixels, random horizontal flips. */
    resolution: number;
    random_flip: boolean;
    /**
     * vqgan stage: train on seeded random crops of this side (of the `resolution` image) instead of whole images;
     * null = whole images. The VQGAN is convolutional, so it still encodes whole images at `resolution`, at a
     * fraction of the training cost (validation and reconstruction grids use whole images).
     */
    random_crop: number | null;
  };
  optimizer: { name: 'adamw'; lr: number; beta1: number; beta2: number; weight_decay: number; eps: number };
  /** decay_steps: cosine/linear decay over the last N steps only (0: after warmup). */
  lr_scheduler: { schedule: LrScheduleName; warmup_steps: number; min_lr: number; decay_steps: number };
  training: {
    seed: number;
    /** The global batch: samples of one optimizer update, at any number of ranks and accumulation steps. */
    batch_size: number;
    /** Micro-batches per update on each rank: each is batch_size / (ranks x steps) samples (memory use). */
    gradient_accumulation_steps: number;
    max_steps: number;
    save_every: number;
    keep_last: number;
    log_every: number;
    /** Also write the logged metrics and artefact images as TensorBoard events under <run>/tensorboard/. */
    tensorboard: boolean;
    validate_every: number;
    /** Held-out batches per validation, each of one rank's micro-batch size (batch_size / (ranks x accumulation steps)). */
    validation_batches: number;
    sample_every: number;
    mixed_precision: string;
    max_grad_norm: number | null;
    cond_dropout_prob: number;
    min_masking_rate: number;
    mask_schedule: string;
    label_smoothing: number;
  };
  ema: {
    enabled: boolean;
    decay: number;
    min_decay: number;
    update_after_step: number;
    update_every: number;
    use_warmup: boolean;
    inv_gamma: number;
    power: number;
  };
  sampling: {
    prompts: string[];
    class_ids: number[];
    steps: number;
    guidance: number;
    temperature: number;
    seed: number;
  };
  /** FID / CLIP score of samples from the newest checkpoint during training (src/train/run/evaluation.ts). */
  evaluation: {
    /** Every N steps, a multiple of training.save_every; 0 = off. */
    every: number;
    /** Prompt file (.tsv PartiPrompts, .csv DrawBench, else one per line); prompts are cycled. */
    prompts: string | null;
    /** Real images for FID: folder, dataset folder or .npz statistics; null = no FID. */
    real: string | null;
    /** Images sampled per evaluation. */
    num_images: number;
    /** pytorch-fid Inception weights (.safetensors); null = the built-in random-weight Inception. */
    inception: string | null;
    resize: FidResize;
    /** HF CLIPModel folder; null = no CLIP score. */
    clip: string | null;
  };
  vqgan_training: {
    rec_loss: ReconstructionKind;
    codebook_weight: number;
    /** Optional VGG16 safetensors (torchvision names) for the perceptual loss. */
    perceptual_weights: string | null;
    perceptual_weight: number;
    discriminator: {
      enabled: boolean;
      start_step: number;
      weight: number;
      loss: GanLossKind;
      ndf: number;
      n_layers: number;
      lr: number;
    };
    restart_dead_codes: { enabled: boolean; after_steps: number };
    /** Steps trained as a plain autoencoder (no quantization) first. */
    autoencoder_warmup_steps: number;
    /** 'kmeans++': codebook set from encoder outputs at the first quantized step. */
    codebook_init: CodebookInit;
    recon_every: number;
  };
}

export const DEFAULTS: TrainConfig = {
  stage: 'tiny',
  experiment: { name: 'muse', output_dir: 'runs/muse' },
  model: {
    vq: 'builtin',
    text_encoder: 'byt5-tiny',
    architecture: 'transformer',
    lowres_vq: null,
    transformer: {},
    vqgan: {},
  },
  data: {
    path: 'datasets/sample',
    weights: null,
    vq_id: null,
    text_id: null,
    lowres_vq_id: null,
    validation_shards: [],
    train_shards: null,
    shuffle_buffer: 1000,
    text_max_length: null,
    resolution: 256,
    random_flip: false,
    random_crop: null,
  },
  optimizer: { name: 'adamw', lr: 1e-4, beta1: 0.9, beta2: 0.999, weight_decay: 0.01, eps: 1e-8 },
  lr_scheduler: { schedule: 'constant', warmup_steps: 1000, min_lr: 0, decay_steps: 0 },
  training: {
    seed: 0,
    batch_size: 16,
    gradient_accumulation_steps: 1,
    max_steps: 1000,
    save_every: 1000,
    keep_last: 3,
    log_every: 1,
    tensorboard: true,
    validate_every: 0,
    validation_batches: 4,
    sample_every: 0,
    mixed_precision: 'no',
    max_grad_norm: 1.0,
    cond_dropout_prob: 0.1,
    min_masking_rate: 0,
    mask_schedule: 'cosine',
    label_smoothing: 0.1,
  },
  ema: {
    enabled: false,
    decay: 0.9999,
    min_decay: 0,
    update_after_step: 0,
    update_every: 1,
    use_warmup: false,
    inv_gamma: 1,
    power: 2 / 3,
  },
  sampling: { prompts: [], class_ids: [], steps: 12, guidance: 4, temperature: 2, seed: 0 },
  evaluation: { every: 0, prompts: null, real: null, num_images: 200, inception: null, resize: 'clean', clip: null },
  vqgan_training: {
    rec_loss: 'l1',
    codebook_weight: 1,
    perceptual_weights: null,
    perceptual_weight: 1,
    discriminator: { enabled: false, start_step: 10000, weight: 0.8, loss: 'hinge', ndf: 64, n_layers: 3, lr: 1e-4 },
    restart_dead_codes: { enabled: true, after_steps: 200 },
    autoencoder_warmup_steps: 0,
    codebook_init: 'none',
    recon_every: 0,
  },
};

/** Keys whose default is null or whose value may take another form than the default's. */
export const VALUE_KINDS: Record<string, string> = {
  'model.text_encoder': 'string|null',
  'model.lowres_vq': 'string|null',
  'data.lowres_vq_id': 'string|null',
  'data.path': 'string|string[]',
  'data.weights': 'number[]|null',
  'data.vq_id': 'string|null',
  'data.text_id': 'string|null',
  'data.train_shards': 'number[]|null',
  'data.text_max_length': 'number|null',
  'data.random_crop': 'number|null',
  'training.max_grad_norm': 'number|null',
  'vqgan_training.perceptual_weights': 'string|null',
  'data.validation_shards': 'number[]',
  'sampling.prompts': 'string[]',
  'sampling.class_ids': 'number[]',
  'evaluation.prompts': 'string|null',
  'evaluation.real': 'string|null',
  'evaluation.inception': 'string|null',
  'evaluation.clip': 'string|null',
};

/** Free-form sections (checked by the model config functions). */
export const FREE_FORM = new Set(['model.transformer', 'model.vqgan']);

export const ENUMS: Record<string, readonly string[]> = {
  stage: STAGES,
  'model.architecture': ARCHITECTURES,
  'optimizer.name': ['adamw'],
  'lr_scheduler.schedule': LR_SCHEDULES,
  'vqgan_training.rec_loss': RECONSTRUCTION_KINDS,
  'vqgan_training.discriminator.loss': GAN_LOSS_KINDS,
  'vqgan_training.codebook_init': CODEBOOK_INITS,
  'evaluation.resize': FID_RESIZES,
};
