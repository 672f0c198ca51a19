/**
 * PatchGAN discriminator, after taming-transformers' NLayerDiscriminator: 4x4 convs (padding 1), the first
 * `nLayers` with stride 2, LeakyReLU(0.2), then a stride-1 conv and a 1-channel stride-1 output conv, giving
 * one logit per patch. Parameter names follow taming's `main.<index>` Sequential, so its conv weights map by name.
 *
 * Normalisation: taming uses BatchNorm (batch statistics, running averages). Here it is GroupNorm with
 * gcd(32, C) groups (`norm: 'group'`, default) or nothing (`'none'`): per-sample statistics keep the
 * discriminator a pure function of its input (no running state to checkpoint, no train/eval difference).
 * The GroupNorm affine parameters use BatchNorm's names (`main.<i>.weight/.bias`).
 * Layout: NHWC, conv weights HWIO in tfjs (PyTorch OIHW when saved).
 */
import * as tf from '@tensorflow/tfjs';
import { SeededRandom, deriveSeed } from '../data/random.ts';

export interface DiscriminatorConfig {
  inputChannels: number;
  /** Base width (taming's ndf). */
  ndf: number;
  /** Number of stride-2 convs (taming's n_layers). */
  nLayers: number;
  norm: 'group' | 'none';
}

export const DEFAULT_DISCRIMINATOR: Readonly<DiscriminatorConfig> = Object.freeze({
  inputChannels: 3,
  ndf: 64,
  nLayers: 3,
  norm: 'group',
});

interface LayerSpec {
  conv: string;
  cin: number;
  cout: number;
  stride: 1 | 2;
  bias: boolean;
  /** Name prefix of the norm after the conv, if any. */
  norm?: string;
  act: boolean;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The Sequential's layers with taming's indices (conv, [norm], act per stage). */
function layerSpecs(c: DiscriminatorConfig): LayerSpec[] {
  const out: LayerSpec[] = [];
  let i = 0;
  out.push({ conv: `main.${i}`, cin: c.inputChannels, cout: c.ndf, stride: 2, bias: true, act: true });
  i += 2;
  let mult = 1;
  for (let n = 1; n <= c.nLayers; n++) {
    const prev = mult;
    mult = Math.min(2 ** n, 8);
    const stride = n < c.nLayers ? 2 : 1;
    const spec: LayerSpec = {
      conv: `main.${i}`,
      cin: c.ndf * prev,
      cout: c.ndf * mult,
      stride,
      bias: c.norm === 'none',
      act: true,
    };
    if (c.norm === 'group') spec.norm = `main.${i + 1}`;
    out.push(spec);
    i += 3; // conv, norm, act: taming's indices (kept even without a norm, so names stay comparable)
  }
  out.push({ conv: `main.${i}`, cin: c.ndf * mult, cout: 1, stride: 1, bias: true, act: false });
  return out;
}

/** Side of the logit map for a square input of side `res` (each 4x4 conv with padding 1). */
export function discriminatorOutputSize(c: DiscriminatorConfig, res: number): number {
  let s = res;
  for (const l of layerSpecs(c)) s = Math.floor((s + 2 - 4) / l.stride) + 1;
  return s;
}

export class PatchDiscriminator {
  readonly config: DiscriminatorConfig;
  private readonly specs: LayerSpec[];
  readonly variables = new Map<string, tf.Variable>();

  /** Taming's init: conv weights N(0, 0.02), norm scale N(1, 0.02), biases 0; seeded. */
  constructor(config: Partial<DiscriminatorConfig> = {}, seed = 0) {
    const c = { ...DEFAULT_DISCRIMINATOR, ...config };
    for (const k of ['inputChannels', 'ndf', 'nLayers'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1)
        throw new Error(`discriminator: ${k} must be a positive integer, got ${c[k]}`);
    }
    if (c.norm !== 'group' && c.norm !== 'none')
      throw new Error(`discriminator: norm must be 'group' or 'none', got ${String(c.norm)}`);
    this.config = c;
    this.specs = layerSpecs(c);
    let k = 0;
    const normal = (shape: number[], mean: number) => {
      const rng = new SeededRandom(deriveSeed(seed, 31, k++));
      const n = shape.reduce((a, b) => a * b, 1);
      const v = new Float32Array(n);
      for (let j = 0; j < n; j++) {
        // Box-Muller from the seeded stream (no global tf.random state).
        const u = Math.max(rng.next(), 1e-12);
        v[j] = mean + 0.02 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
      }
      return tf.tensor(v, shape);
    };
    // tidy: the initial values are copied into the variables and freed here.
    tf.tidy(() => {
      for (const l of this.specs) {
        this.variables.set(`${l.conv}.weight`, tf.variable(normal([4, 4, l.cin, l.cout], 0)));
        if (l.bias) this.variables.set(`${l.conv}.bias`, tf.variable(tf.zeros([l.cout])));
        if (l.norm) {
          this.variables.set(`${l.norm}.weight`, tf.variable(normal([l.cout], 1)));
          this.variables.set(`${l.norm}.bias`, tf.variable(tf.zeros([l.cout])));
        }
      }
    });
  }

  /** Patch logits [B, s, s, 1] for images [B, H, W, C] (the VQGAN's [0, 1] pixel space). */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[3] !== this.config.inputChannels) {
      throw new Error(
        `discriminator expects NHWC images with ${this.config.inputChannels} channels, got shape [${x.shape}]`,
      );
    }
    const side = Math.min(x.shape[1], x.shape[2]);
    if (discriminatorOutputSize(this.config, side) < 1) {
      throw new Error(
        `discriminator: ${x.shape[1]}x${x.shape[2]} images are too small for nLayers=${this.config.nLayers} (use fewer layers)`,
      );
    }
    const v = (n: string) => this.variables.get(n)!;
    return tf.tidy(() => {
      let h: tf.Tensor4D = x;
      for (const l of this.specs) {
        const padded = tf.pad(h, [
          [0, 0],
          [1, 1],
          [1, 1],
          [0, 0],
        ]);
        h = tf.conv2d(padded, v(`${l.conv}.weight`) as tf.Tensor4D, l.stride, 'valid');
        if (l.bias) h = h.add(v(`${l.conv}.bias`));
        if (l.norm) h = groupNormAny(h, v(`${l.norm}.weight`), v(`${l.norm}.bias`));
        if (l.act) h = tf.leakyRelu(h, 0.2);
      }
      return h;
    });
  }

  /** Weights in PyTorch layout (conv OIHW) under taming's names, for a safetensors file. */
  torchTensors(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [n, t] of this.variables) out[n] = t.rank === 4 ? tf.transpose(t, [3, 2, 0, 1]) : t.clone();
    return out;
  }

  /** Loads torchTensors() output (strict: same names and shapes). */
  async load(
    src: { names(): string[]; tensor(name: string): tf.Tensor | Promise<tf.Tensor> },
    where = 'discriminator',
  ): Promise<void> {
    const names = new Set(src.names());
    const missing = [...this.variables.keys()].filter((n) => !names.has(n));
    const extra = [...names].filter((n) => !this.variables.has(n));
    if (missing.length || extra.length) {
      throw new Error(
        `${where}: tensors do not match the discriminator config (missing: ${missing.join(', ') || '-'}; unexpected: ${extra.join(', ') || '-'})`,
      );
    }
    const loaded = new Map<string, tf.Tensor>();
    try {
      for (const [n, variable] of this.variables) {
        const raw = await src.tensor(n);
        const t = raw.rank === 4 ? tf.transpose(raw, [2, 3, 1, 0]) : raw.clone();
        raw.dispose();
        loaded.set(n, t);
        if (t.shape.join() !== variable.shape.join())
          throw new Error(`${where}: ${n} has shape [${t.shape}], expected [${variable.shape}]`);
      }
      for (const [n, t] of loaded) this.variables.get(n)!.assign(t);
    } finally {
      tf.dispose([...loaded.values()]);
    }
  }

  numParams(): number {
    let n = 0;
    for (const v of this.variables.values()) n += v.size;
    return n;
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
    this.variables.clear();
  }
}

/** GroupNorm with gcd(32, C) groups (works for any width), eps 1e-5 as torch's default. */
function groupNormAny(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const groups = gcd(32, c);
  const grouped = x.reshape([b, h * w, groups, c / groups]);
  const { mean, variance } = tf.moments(grouped, [1, 3], true);
  const normed = grouped.sub(mean).mul(tf.rsqrt(variance.add(1e-5)));
  return normed.reshape([b, h, w, c]).mul(gamma).add(beta) as tf.Tensor4D;
}
