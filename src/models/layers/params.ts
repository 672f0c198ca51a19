// Named parameters: a Map from the reference (PyTorch state_dict) name to a tf.Variable, plus loading from
// any source of named tensors with strict name and shape checks.
import * as tf from '@tensorflow/tfjs';

/** Anything that lists named tensors and hands them out (a safetensors file, a checkpoint, a Map). */
export interface TensorSource {
  names(): string[];
  tensor(name: string): tf.Tensor | Promise<tf.Tensor>;
}

export type Init = Float32Array | 'ones' | 'zeros';

export class ParamStore {
  readonly vars = new Map<string, tf.Variable>();

  /** Creates a trainable float32 variable (tfjs-side name left automatic: tfjs names are global). */
  add(name: string, shape: number[], init: Init): tf.Variable {
    if (this.vars.has(name)) throw new Error(`duplicate parameter ${name}`);
    const size = shape.reduce((a, b) => a * b, 1);
    let values: Float32Array;
    if (init === 'ones') values = new Float32Array(size).fill(1);
    else if (init === 'zeros') values = new Float32Array(size);
    else values = init;
    if (values.length !== size) throw new Error(`${name}: ${values.length} values for shape [${shape}]`);
    const initial = tf.tensor(values, shape, 'float32');
    const v = tf.variable(initial, true);
    initial.dispose(); // the variable holds its own reference to the buffer
    this.vars.set(name, v);
    return v;
  }

  get(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  }

  /** Optional parameter (undefined when the config does not create it). */
  maybe(name: string): tf.Variable | undefined {
    return this.vars.get(name);
  }

  names(): string[] {
    return [...this.vars.keys()];
  }

  count(): number {
    let n = 0;
    for (const v of this.vars.values()) n += v.size;
    return n;
  }

  /**
   * Assigns every parameter from `source`. `aliases` maps other accepted source names to ours (e.g.
   * `shared.weight` -> `encoder.embed_tokens.weight`); `ignore` skips source names that are not parameters
   * (buffers). Every other source name must be a parameter of the same shape, and every parameter assigned.
   */
  async load(
    source: TensorSource,
    opts: { aliases?: Record<string, string>; ignore?: (name: string) => boolean } = {},
  ): Promise<void> {
    const assigned = new Set<string>();
    const unknown: string[] = [];
    for (const srcName of source.names()) {
      const name = this.vars.has(srcName) ? srcName : opts.aliases?.[srcName];
      if (name === undefined || !this.vars.has(name)) {
        if (!opts.ignore?.(srcName)) unknown.push(srcName);
        continue;
      }
      if (assigned.has(name)) continue; // the same tensor stored under two tied names
      const v = this.vars.get(name)!;
      const t = await source.tensor(srcName);
      try {
        if (t.shape.join(',') !== v.shape.join(',')) {
          throw new Error(`${srcName}: shape [${t.shape}] in the checkpoint, [${v.shape}] expected`);
        }
        if (t.dtype === 'float32') v.assign(t);
        else tf.tidy(() => v.assign(tf.cast(t, 'float32')));
      } finally {
        t.dispose();
      }
      assigned.add(name);
    }
    const missing = this.names().filter((n) => !assigned.has(n));
    if (unknown.length || missing.length) {
      const parts = [];
      if (unknown.length)
        parts.push(`unexpected tensors: ${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ', …' : ''}`);
      if (missing.length)
        parts.push(`missing tensors: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}`);
      throw new Error(`checkpoint does not match the model: ${parts.join('; ')}`);
    }
  }

  /** Name -> tensor record (the variables themselves), e.g. for saveSafetensors. */
  record(): Record<string, tf.Tensor> {
    return Object.fromEntries(this.vars);
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
  }
}

/** A TensorSource over in-memory tensors (tests, conversions). */
export function mapSource(tensors: Record<string, tf.Tensor>): TensorSource {
  return {
    names: () => Object.keys(tensors),
    tensor: (name) => tf.clone(tensors[name]),
  };
}

/** `loss()` and its gradient w.r.t. every parameter of `params`, keyed by reference name (the caller disposes them). */
export function lossAndParamGrads(
  params: ParamStore,
  loss: () => tf.Scalar,
): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const names = params.names();
  const vars = names.map((n) => params.get(n));
  const { value, grads } = tf.variableGrads(loss, vars);
  const out = new Map<string, tf.Tensor>();
  names.forEach((n, i) => out.set(n, grads[vars[i].name]));
  return { loss: value, grads: out };
}
