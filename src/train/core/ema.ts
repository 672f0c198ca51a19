// Exponential moving average of weights with diffusers' EMAModel semantics (open-muse trains with it).
import * as tf from '@tensorflow/tfjs';
import type { TensorSource } from '../../models/layers/params.ts';

export interface EmaOptions {
  decay: number;
  /** Lower bound on the decay (default 0). */
  minDecay?: number;
  /** Steps before averaging starts; until then the shadow copies the weights (default 0). */
  updateAfterStep?: number;
  /** Update on optimization steps 1, 1 + n, 1 + 2n, ... (default 1). */
  updateEvery?: number;
  /** Warmup decay 1 - (1 + s / invGamma)^-power instead of (1 + s) / (10 + s) (default false). */
  useWarmup?: boolean;
  invGamma?: number;
  power?: number;
}

export class EMA {
  readonly shadow = new Map<string, tf.Variable>();
  private readonly params: Map<string, tf.Variable>;
  private readonly o: Required<EmaOptions>;

  constructor(params: Map<string, tf.Variable>, opts: EmaOptions) {
    this.o = {
      decay: opts.decay,
      minDecay: opts.minDecay ?? 0,
      updateAfterStep: opts.updateAfterStep ?? 0,
      updateEvery: opts.updateEvery ?? 1,
      useWarmup: opts.useWarmup ?? false,
      invGamma: opts.invGamma ?? 1,
      power: opts.power ?? 2 / 3,
    };
    const o = this.o;
    const bad = (what: string) => {
      throw new Error(`EMA: ${what}`);
    };
    if (!(o.decay >= 0 && o.decay <= 1)) bad(`decay must be in [0, 1], got ${o.decay}`);
    if (!(o.minDecay >= 0 && o.minDecay <= o.decay)) bad(`minDecay must be in [0, decay], got ${o.minDecay}`);
    if (!Number.isInteger(o.updateAfterStep) || o.updateAfterStep < 0)
      bad(`updateAfterStep must be an integer >= 0, got ${o.updateAfterStep}`);
    if (!Number.isInteger(o.updateEvery) || o.updateEvery < 1)
      bad(`updateEvery must be an integer >= 1, got ${o.updateEvery}`);
    if (!(o.invGamma > 0) || !(o.power > 0)) bad(`invGamma and power must be > 0, got ${o.invGamma}, ${o.power}`);
    this.params = new Map(params);
    for (const [name, p] of params) this.shadow.set(name, tf.variable(tf.clone(p), false));
  }

  /** diffusers get_decay at optimization step `step` (1-based). */
  decayAt(step: number): number {
    const o = this.o;
    const s = Math.max(0, step - o.updateAfterStep - 1);
    if (s <= 0) return 0;
    const d = o.useWarmup ? 1 - Math.pow(1 + s / o.invGamma, -o.power) : (1 + s) / (10 + s);
    return Math.max(Math.min(d, o.decay), o.minDecay);
  }

  /** After the optimizer update numbered `step` (1-based): shadow -= (1 - d) * (shadow - param) on every updateEvery-th step. */
  update(step: number): void {
    if (!Number.isInteger(step) || step < 1) throw new Error(`EMA.update: step must be an integer >= 1, got ${step}`);
    if ((step - 1) % this.o.updateEvery !== 0) return;
    const oneMinus = 1 - this.decayAt(step);
    for (const [name, s] of this.shadow) {
      const p = this.params.get(name)!;
      // decay 0 (before updateAfterStep): an exact copy, as diffusers' formula gives up to rounding.
      tf.tidy(() => {
        s.assign(oneMinus === 1 ? tf.clone(p) : tf.sub(s, tf.mul(tf.sub(s, p), oneMinus)));
      });
    }
  }

  /** Runs fn with the model's variables holding the EMA weights, then restores them (also on throw). */
  async withEmaWeights<T>(fn: () => Promise<T> | T): Promise<T> {
    // tf.clone shares the buffer; assign() swaps the variable's buffer, so the clone keeps the live weights.
    const saved = new Map<string, tf.Tensor>();
    for (const [name, p] of this.params) {
      saved.set(name, tf.clone(p));
      p.assign(this.shadow.get(name)!);
    }
    try {
      return await fn();
    } finally {
      for (const [name, p] of this.params) {
        const t = saved.get(name)!;
        p.assign(t);
        t.dispose();
      }
    }
  }

  /** The shadow weights under the parameter names (so the file is also a loadable weights file); clones the caller disposes. */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, s] of this.shadow) out.set(name, tf.clone(s));
    return out;
  }

  /** Strict: exactly the parameter names with matching shapes; nothing changes on error. */
  async loadState(src: Map<string, tf.Tensor> | TensorSource): Promise<void> {
    const source: TensorSource =
      src instanceof Map ? { names: () => [...src.keys()], tensor: (n) => src.get(n)! } : src;
    const owned = !(src instanceof Map);
    const names = new Set(source.names());
    const problems = [
      ...[...names].filter((n) => !this.shadow.has(n)).map((n) => `unknown tensor ${n}`),
      ...[...this.shadow.keys()].filter((n) => !names.has(n)).map((n) => `missing ${n}`),
    ];
    if (problems.length)
      throw new Error(
        `EMA.loadState: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? ` (+${problems.length - 10} more)` : ''}`,
      );
    const loaded = new Map<string, tf.Tensor>();
    try {
      for (const [name, s] of this.shadow) {
        const t = await source.tensor(name);
        if (owned) loaded.set(name, t);
        if (t.shape.join(',') !== s.shape.join(','))
          throw new Error(`EMA.loadState: ${name} has shape [${t.shape}], parameter is [${s.shape}]`);
        if (!owned) loaded.set(name, t);
      }
      for (const [name, s] of this.shadow) {
        const t = loaded.get(name)!;
        tf.tidy(() => {
          s.assign(t.dtype === 'float32' ? tf.clone(t) : tf.cast(t, 'float32'));
        });
      }
    } finally {
      if (owned) for (const t of loaded.values()) t.dispose();
    }
  }

  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
  }
}
