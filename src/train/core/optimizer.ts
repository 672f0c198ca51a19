// AdamW with torch.optim.AdamW semantics (amsgrad=False, maximize=False): decoupled weight decay
// p *= 1 - lr * wd, then the bias-corrected Adam step. Moments live in tf.Variables next to the params.
import * as tf from '@tensorflow/tfjs';
import type { TensorSource } from '../../models/layers/params.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Parameters excluded from weight decay (default: defaultNoDecay). */
  noDecay?: (name: string) => boolean;
}

const NO_DECAY_MARKERS = ['norm', 'layer_norm', '_ln', 'ln_', 'mlm_ln', '.norm', 'embed', 'embedding'];

/**
 * Decided by name only (a 1-D weight is NOT assumed to be a norm): true for biases (the last name segment
 * contains 'bias', e.g. `x.bias`, `norm_bias`), for every name containing a norm marker ('norm', 'layer_norm',
 * '_ln', 'ln_', 'mlm_ln', '.norm') and for embeddings ('embed', 'embedding'; this includes the VQ codebook
 * `quantize.embedding.weight`). Superset of open-muse's list ("bias", "layer_norm.weight", "mlm_ln.weight",
 * "embeddings.weight").
 */
export function defaultNoDecay(name: string): boolean {
  const last = name.slice(name.lastIndexOf('.') + 1);
  if (last.includes('bias')) return true;
  return NO_DECAY_MARKERS.some((m) => name.includes(m));
}

interface Slot {
  param: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  /** PyTorch keeps one step per parameter: a param without a grad in an update does not advance. */
  step: number;
  decay: boolean;
}

function checkOptions(o: AdamWOptions): void {
  const bad = (what: string) => {
    throw new Error(`AdamW: ${what}`);
  };
  if (!(o.beta1 >= 0 && o.beta1 < 1)) bad(`beta1 must be in [0, 1), got ${o.beta1}`);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) bad(`beta2 must be in [0, 1), got ${o.beta2}`);
  if (!(o.eps >= 0)) bad(`eps must be >= 0, got ${o.eps}`);
  if (!(o.weightDecay >= 0)) bad(`weightDecay must be >= 0, got ${o.weightDecay}`);
}

export class AdamW {
  private readonly slots = new Map<string, Slot>();
  private updates = 0;
  private readonly opts: AdamWOptions;

  constructor(params: Map<string, tf.Variable>, opts: AdamWOptions) {
    checkOptions(opts);
    this.opts = opts;
    const noDecay = opts.noDecay ?? defaultNoDecay;
    for (const [name, param] of params) {
      if (param.dtype !== 'float32') throw new Error(`AdamW: parameter ${name} is ${param.dtype}, float32 expected`);
      this.slots.set(name, {
        param,
        m: tf.variable(tf.zerosLike(param), false),
        v: tf.variable(tf.zerosLike(param), false),
        step: 0,
        decay: !noDecay(name),
      });
    }
  }

  /** Number of apply() calls so far (PyTorch's per-param 'step' for params that always get a grad). */
  get step(): number {
    return this.updates;
  }

  /** Same as `step`: the number to save with stateTensors() and pass back to loadState(). */
  get stateStep(): number {
    return this.updates;
  }

  /** Names of the params that get weight decay (for logging / checks). */
  decayedNames(): string[] {
    return [...this.slots].filter(([, s]) => s.decay).map(([n]) => n);
  }

  /** One update with learning rate lr. Grads are keyed like params; a param with no grad is left alone. Does not dispose grads. */
  apply(grads: Map<string, tf.Tensor>, lr: number): void {
    if (!Number.isFinite(lr) || lr < 0)
      throw new Error(`AdamW.apply: learning rate must be a finite number >= 0, got ${lr}`);
    for (const [name, g] of grads) {
      const s = this.slots.get(name);
      if (!s) throw new Error(`AdamW.apply: gradient for unknown parameter ${name}`);
      if (g.shape.join(',') !== s.param.shape.join(',')) {
        throw new Error(`AdamW.apply: gradient for ${name} has shape [${g.shape}], parameter is [${s.param.shape}]`);
      }
    }
    const { beta1, beta2, eps, weightDecay } = this.opts;
    this.updates++;
    for (const [name, g] of grads) {
      const s = this.slots.get(name)!;
      s.step++;
      // Scalars computed in float64 here, as PyTorch does on the host for non-capturable steps.
      const bc1 = 1 - Math.pow(beta1, s.step);
      const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, s.step));
      const stepSize = lr / bc1;
      const shrink = s.decay ? 1 - lr * weightDecay : 1;
      tf.tidy(() => {
        const m = tf.add(tf.mul(s.m, beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(s.v, beta2), tf.mul(tf.square(g), 1 - beta2));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps);
        const p = shrink === 1 ? s.param : tf.mul(s.param, shrink);
        s.param.assign(tf.sub(p, tf.mul(tf.div(m, denom), stepSize)));
        s.m.assign(m);
        s.v.assign(v);
      });
    }
  }

  /**
   * Optimizer state as named tensors `exp_avg.<param>` and `exp_avg_sq.<param>`: CLONES (cheap, tfjs shares
   * the buffer until the next update) that the caller disposes. A param whose own step differs from `step`
   * (it missed some grads) also gets a scalar `step.<param>`. Save `step` alongside.
   */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, s] of this.slots) {
      out.set(`exp_avg.${name}`, tf.clone(s.m));
      out.set(`exp_avg_sq.${name}`, tf.clone(s.v));
      if (s.step !== this.updates) out.set(`step.${name}`, tf.scalar(s.step, 'float32'));
    }
    return out;
  }

  /** Restores from stateTensors() output (strict: every moment present with the param's shape, no unknown names) and the step. */
  async loadState(tensors: Map<string, tf.Tensor> | TensorSource, step: number): Promise<void> {
    if (!Number.isInteger(step) || step < 0)
      throw new Error(`AdamW.loadState: step must be an integer >= 0, got ${step}`);
    const src: TensorSource =
      tensors instanceof Map ? { names: () => [...tensors.keys()], tensor: (n) => tensors.get(n)! } : tensors;
    const owned = !(tensors instanceof Map); // tensors from a Map belong to the caller
    const names = new Set(src.names());
    const problems: string[] = [];
    for (const n of names) {
      const m = /^(exp_avg|exp_avg_sq|step)\.(.+)$/.exec(n);
      if (!m || !this.slots.has(m[2])) problems.push(`unknown optimizer tensor ${n}`);
    }
    for (const name of this.slots.keys()) {
      for (const k of ['exp_avg', 'exp_avg_sq']) if (!names.has(`${k}.${name}`)) problems.push(`missing ${k}.${name}`);
    }
    if (problems.length)
      throw new Error(
        `AdamW.loadState: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? ` (+${problems.length - 10} more)` : ''}`,
      );
    // Read everything first so a bad shape leaves the optimizer untouched.
    const loaded: Array<{ slot: Slot; m: tf.Tensor; v: tf.Tensor; step: number }> = [];
    const toDispose: tf.Tensor[] = [];
    try {
      for (const [name, slot] of this.slots) {
        const m = await src.tensor(`exp_avg.${name}`);
        if (owned) toDispose.push(m);
        const v = await src.tensor(`exp_avg_sq.${name}`);
        if (owned) toDispose.push(v);
        for (const [k, t] of [
          ['exp_avg', m],
          ['exp_avg_sq', v],
        ] as const) {
          if (t.shape.join(',') !== slot.param.shape.join(',')) {
            throw new Error(`AdamW.loadState: ${k}.${name} has shape [${t.shape}], parameter is [${slot.param.shape}]`);
          }
        }
        let pstep = step;
        if (names.has(`step.${name}`)) {
          const t = await src.tensor(`step.${name}`);
          pstep = (await t.data())[0];
          if (owned) t.dispose();
          if (!Number.isInteger(pstep) || pstep < 0 || pstep > step)
            throw new Error(`AdamW.loadState: step.${name} = ${pstep} is not an integer in [0, ${step}]`);
        }
        loaded.push({ slot, m, v, step: pstep });
      }
      for (const l of loaded) {
        tf.tidy(() => {
          l.slot.m.assign(l.m.dtype === 'float32' ? tf.clone(l.m) : tf.cast(l.m, 'float32'));
          l.slot.v.assign(l.v.dtype === 'float32' ? tf.clone(l.v) : tf.cast(l.v, 'float32'));
        });
        l.slot.step = l.step;
      }
      this.updates = step;
    } finally {
      for (const t of toDispose) t.dispose();
    }
  }

  dispose(): void {
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.slots.clear();
  }
}
