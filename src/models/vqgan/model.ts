// MaskGIT VQGAN (open-muse `MaskGitVQGAN`): conv encoder -> nearest-codebook quantizer -> conv decoder.
//
// Layout: images and latents are NHWC here (tfjs convolutions are channels-last); pixel values are RGB in
// [0, 1], as open-muse feeds them (no mean/std, no [-1, 1] rescale). Decoder output is in the same space and
// unclamped. Token ids are [B, h*w], row-major over the latent grid (index = row * w + col), which is the
// same order as open-muse's NCHW -> NHWC flatten.
import * as tf from '@tensorflow/tfjs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { assertWasmHeapFits } from '../../runtime/memory.ts';
import { assertGpuBufferFits } from '../../runtime/webgpu.ts';
import { openCheckpoint, saveSafetensors, type CheckpointReader } from '../safetensors.ts';
import { configFromJson, configToJson, derived, vqganConfig, type VqganConfig } from './config.ts';
import { avgPool2x, conv2dSame, groupNorm, resnetBlock, silu, stopGradient, upsampleNearest2x } from './layers.ts';
import { codeDistances, nearestCodes } from './quantizer.ts';
import { fromTorch, initParam, toTorch, vqganParamSpecs, type ParamSpec } from './params.ts';

export type Tap = (name: string, activation: tf.Tensor) => void;

export interface ForwardOptions {
  /** Applies dropout (when config.dropout > 0). */
  training?: boolean;
  /** Called with intermediate activations named like open-muse modules (debugging parity). */
  tap?: Tap;
}

export interface QuantizeResult {
  /** Codebook vectors [B, h, w, D]; with `returnLoss`, straight-through (value = codes, gradient -> latents). */
  quantized: tf.Tensor4D;
  /** Nearest code per position, [B, h*w] int32. */
  ids: tf.Tensor2D;
  /** mean((sg(zq) - z)^2) + commitment_cost * mean((zq - sg(z))^2), as open-muse computes it. */
  loss?: tf.Scalar;
}

export type VqganSource = string | { config: string | VqganConfig | Record<string, unknown>; weights: string };

export class VQGAN {
  readonly specs: ParamSpec[];
  private readonly params: Map<string, tf.Variable>;

  private constructor(
    readonly config: VqganConfig,
    tensors: Map<string, tf.Tensor>,
  ) {
    this.specs = vqganParamSpecs(config);
    this.params = new Map();
    for (const spec of this.specs) {
      const t = tensors.get(spec.name);
      if (!t) throw new Error(`VQGAN: missing parameter ${spec.name}`);
      this.params.set(spec.name, tf.variable(t, true));
      t.dispose();
    }
  }

  /** A randomly initialised model (PyTorch default init), deterministic for a seed. */
  static create(config: Partial<VqganConfig> = {}, seed = 0): VQGAN {
    const full = vqganConfig(config);
    const tensors = new Map(vqganParamSpecs(full).map((spec, i) => [spec.name, initParam(spec, seed * 100003 + i)]));
    return new VQGAN(full, tensors);
  }

  /**
   * Loads open-muse weights: a directory with config.json + model.safetensors (or a sharded index), or
   * `{ config, weights }` where config is a config.json path, its parsed JSON, or a VqganConfig. Every
   * tensor must match one parameter by name and shape, and every parameter must be present.
   */
  static async fromSafetensors(source: VqganSource): Promise<VQGAN> {
    const { config, weights } =
      typeof source === 'string' ? { config: path.join(source, 'config.json'), weights: source } : source;
    const full = await resolveConfig(config);
    const ckpt = await openCheckpoint(weights);
    try {
      return new VQGAN(full, await loadTensors(ckpt, vqganParamSpecs(full), weights));
    } finally {
      await ckpt.close();
    }
  }

  /** Writes config.json + model.safetensors (PyTorch names and layouts) into `dir`. */
  async save(dir: string, opts: { dtype?: 'F32' | 'F16' } = {}): Promise<void> {
    await fsp.mkdir(dir, { recursive: true });
    const tensors: Record<string, tf.Tensor> = {};
    for (const spec of this.specs) tensors[spec.name] = toTorch(spec, this.params.get(spec.name)!);
    try {
      await saveSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' }, opts);
    } finally {
      tf.dispose(Object.values(tensors));
    }
    const tmp = path.join(dir, `config.json.tmp-${process.pid}`);
    await fsp.writeFile(tmp, JSON.stringify(configToJson(this.config), null, 2) + '\n');
    await fsp.rename(tmp, path.join(dir, 'config.json'));
  }

  /** Latent grid side for the configured resolution, and tokens per image. */
  get latentSize(): number {
    return derived(this.config).latentSize;
  }
  get tokensPerImage(): number {
    return this.latentSize ** 2;
  }

  param(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`VQGAN: no parameter named ${name}`);
    return v;
  }

  /** Parameters by open-muse name (tfjs layouts: conv weights HWIO). */
  namedVariables(): Map<string, tf.Variable> {
    return new Map(this.params);
  }

  trainableVariables(): tf.Variable[] {
    return [...this.params.values()];
  }

  numParams(): number {
    return this.trainableVariables().reduce((n, v) => n + v.size, 0);
  }

  /** Encoder: pixels [B, H, W, C] in [0, 1] -> latents [B, H/f, W/f, z_channels] (pre-quantization). */
  encoder(pixels: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D {
    const c = this.config;
    if (pixels.rank !== 4 || pixels.shape[3] !== c.numChannels) {
      throw new Error(`VQGAN.encoder expects NHWC pixels with ${c.numChannels} channels, got shape [${pixels.shape}]`);
    }
    const { numResolutions: n } = derived(c);
    const p = (name: string) => this.param(name);
    const drop = opts.training ? c.dropout : 0;
    return tf.tidy(() => {
      let h = conv2dSame(pixels, p('encoder.conv_in.weight'));
      let channels = c.hiddenChannels;
      for (let i = 0; i < n; i++) {
        const out = c.hiddenChannels * c.channelMult[i];
        for (let j = 0; j < c.numResBlocks; j++) {
          h = resnetBlock(p, `encoder.down.${i}.block.${j}`, h, channels !== out, drop, c.normNumGroups);
          channels = out;
        }
        if (i !== n - 1) h = avgPool2x(h);
        opts.tap?.(`encoder.down.${i}`, h);
      }
      for (let j = 0; j < c.numResBlocks; j++) {
        h = resnetBlock(p, `encoder.mid.${j}`, h, false, drop, c.normNumGroups);
        opts.tap?.(`encoder.mid.${j}`, h);
      }
      h = groupNorm(h, p('encoder.norm_out.weight'), p('encoder.norm_out.bias'), c.normNumGroups);
      opts.tap?.('encoder.norm_out', h);
      return conv2dSame(silu(h), p('encoder.conv_out.weight'), p('encoder.conv_out.bias'));
    });
  }

  /** Squared distances [N, K] from flattened latents [N, D] to every code (open-muse `compute_distances`). */
  distances(flatLatents: tf.Tensor2D): tf.Tensor2D {
    return codeDistances(flatLatents, this.param('quantize.embedding.weight') as tf.Tensor2D);
  }

  /** Nearest-code quantization of encoder latents [B, h, w, D]. */
  quantize(latents: tf.Tensor4D, opts: { returnLoss?: boolean } = {}): QuantizeResult {
    const [b, h, w, d] = latents.shape;
    return tf.tidy(() => {
      const flat = latents.reshape([b * h * w, d]) as tf.Tensor2D;
      const nearest = nearestCodes(flat, this.param('quantize.embedding.weight') as tf.Tensor2D);
      const ids = nearest.ids.reshape([b, h * w]) as tf.Tensor2D;
      const codes = nearest.codes.reshape([b, h, w, d]) as tf.Tensor4D;
      if (!opts.returnLoss) return { quantized: codes, ids };
      const beta = this.config.commitmentCost;
      const commitment = tf.mean(tf.squaredDifference(stopGradient(codes), latents));
      const codebook = tf.mean(tf.squaredDifference(codes, stopGradient(latents)));
      const loss = commitment.add(codebook.mul(beta)) as tf.Scalar;
      // Straight-through: forward value = codes, gradient flows to the latents unchanged.
      const quantized = latents.add(stopGradient(codes.sub(latents))) as tf.Tensor4D;
      return { quantized, ids, loss };
    });
  }

  /** Codebook vectors for token ids [B, N] -> [B, h, w, D] (a square grid unless h, w are given). */
  codebookEntries(ids: tf.Tensor2D, h?: number, w?: number): tf.Tensor4D {
    const [b, n] = ids.shape;
    const side = Math.round(Math.sqrt(n));
    const rows = h ?? side;
    const cols = w ?? side;
    if (rows * cols !== n) throw new Error(`VQGAN: ${n} tokens per image do not form a ${h ?? '√N'}x${w ?? '√N'} grid`);
    return tf.tidy(() => {
      const e = this.param('quantize.embedding.weight');
      return tf
        .gather(e, ids.reshape([b * n]).toInt())
        .reshape([b, rows, cols, this.config.quantizedEmbedDim]) as tf.Tensor4D;
    });
  }

  /** Decoder: quantized latents [B, h, w, D] -> pixels [B, h*f, w*f, C] (unclamped, ~[0, 1]). */
  decoder(quantized: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D {
    const c = this.config;
    const { numResolutions: n } = derived(c);
    const p = (name: string) => this.param(name);
    const drop = opts.training ? c.dropout : 0;
    return tf.tidy(() => {
      let h = conv2dSame(quantized, p('decoder.conv_in.weight'), p('decoder.conv_in.bias'));
      opts.tap?.('decoder.conv_in', h);
      for (let j = 0; j < c.numResBlocks; j++) {
        h = resnetBlock(p, `decoder.mid.${j}`, h, false, drop, c.normNumGroups);
        opts.tap?.(`decoder.mid.${j}`, h);
      }
      let channels = c.hiddenChannels * c.channelMult[n - 1];
      for (let i = n - 1; i >= 0; i--) {
        const out = c.hiddenChannels * c.channelMult[i];
        for (let j = 0; j < c.numResBlocks; j++) {
          h = resnetBlock(p, `decoder.up.${i}.block.${j}`, h, channels !== out, drop, c.normNumGroups);
          channels = out;
        }
        if (i !== 0) {
          h = conv2dSame(
            upsampleNearest2x(h),
            p(`decoder.up.${i}.upsample_conv.weight`),
            p(`decoder.up.${i}.upsample_conv.bias`),
          );
        }
        opts.tap?.(`decoder.up.${i}`, h);
      }
      h = silu(groupNorm(h, p('decoder.norm_out.weight'), p('decoder.norm_out.bias'), c.normNumGroups));
      opts.tap?.('decoder.norm_out', h); // the last conv's input (the GAN's adaptive weight needs it)
      return conv2dSame(h, p('decoder.conv_out.weight'), p('decoder.conv_out.bias'));
    });
  }

  /**
   * Peak bytes of an inference pass over `batch` images of `h` x `w`: about five live activations at the full
   * resolution level (block input, norm, SiLU, conv output, sum).
   */
  inferenceBytes(batch: number, h: number, w: number): number {
    return 5 * batch * h * w * this.config.hiddenChannels * this.config.channelMult[0] * 4;
  }

  private checkMemory(what: string, batch: number, h: number, w: number): void {
    const perImage = this.inferenceBytes(1, h, w);
    const fits = Math.max(1, Math.floor((4 * 1024 ** 3 * 0.9) / perImage));
    assertWasmHeapFits(
      this.inferenceBytes(batch, h, w),
      `VQGAN ${what} of ${batch} images at ${h}x${w}`,
      `lower the batch size (about ${fits} images fit)`,
    );
    // On webgpu one activation at full resolution must fit in one GPU buffer.
    assertGpuBufferFits(
      this.inferenceBytes(1, h, w) / 5,
      batch,
      `VQGAN ${what} of ${batch} images at ${h}x${w} (one activation)`,
      'the batch size (muse-data tokenize --batch; in training the micro-batch, training.batch_size / (ranks x gradient_accumulation_steps))',
    );
  }

  /** Pixels [B, H, W, C] in [0, 1] -> token ids [B, (H/f)*(W/f)] int32. */
  encode(pixels: tf.Tensor4D): tf.Tensor2D {
    this.checkMemory('encode', pixels.shape[0], pixels.shape[1], pixels.shape[2]);
    return tf.tidy(() => {
      const latents = this.encoder(pixels);
      return this.quantize(latents).ids;
    });
  }

  /** Token ids [B, N] (N a square) -> pixels [B, H, W, C], unclamped. */
  decodeCode(ids: tf.Tensor2D): tf.Tensor4D {
    const side = Math.round(Math.sqrt(ids.shape[1])) * derived(this.config).reductionFactor;
    this.checkMemory('decode', ids.shape[0], side, side);
    return tf.tidy(() => this.decoder(this.codebookEntries(ids)));
  }

  /** Full autoencoder pass for training: reconstruction, straight-through codes, ids and codebook loss. */
  forward(pixels: tf.Tensor4D, opts: ForwardOptions = {}) {
    return tf.tidy(() => {
      const latents = this.encoder(pixels, opts);
      const { quantized, ids, loss } = this.quantize(latents, { returnLoss: true });
      const reconstruction = this.decoder(quantized, opts);
      return { reconstruction, quantized, ids, codebookLoss: loss! };
    });
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

async function resolveConfig(config: string | VqganConfig | Record<string, unknown>): Promise<VqganConfig> {
  if (typeof config === 'string') {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(await fsp.readFile(config, 'utf8'));
    } catch (err) {
      throw new Error(`${config}: cannot read VQGAN config (${(err as Error).message})`);
    }
    return configFromJson(json);
  }
  if ('hiddenChannels' in config) return vqganConfig(config as Partial<VqganConfig>);
  return configFromJson(config as Record<string, unknown>);
}

async function loadTensors(ckpt: CheckpointReader, specs: ParamSpec[], where: string): Promise<Map<string, tf.Tensor>> {
  const wanted = new Set(specs.map((s) => s.name));
  const unexpected = ckpt.names().filter((n) => !wanted.has(n));
  const missing = specs.filter((s) => !ckpt.has(s.name)).map((s) => s.name);
  if (unexpected.length || missing.length) {
    throw new Error(
      `${where}: checkpoint does not match the VQGAN config` +
        (missing.length ? `; missing: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}` : '') +
        (unexpected.length
          ? `; unexpected: ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', ...' : ''}`
          : ''),
    );
  }
  const out = new Map<string, tf.Tensor>();
  try {
    for (const spec of specs) {
      const { shape } = ckpt.info(spec.name);
      if (shape.join() !== spec.torchShape.join()) {
        throw new Error(`${where}: ${spec.name} has shape [${shape}], the config needs [${spec.torchShape}]`);
      }
      const raw = await ckpt.tensor(spec.name);
      out.set(
        spec.name,
        tf.tidy(() => fromTorch(spec, raw.toFloat())),
      );
      raw.dispose();
    }
  } catch (err) {
    tf.dispose([...out.values()]);
    throw err;
  }
  return out;
}
