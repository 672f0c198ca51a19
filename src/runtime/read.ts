// Reading tensor values back to JavaScript. Always asynchronous: the webgpu backend under Node has no
// synchronous read (`dataSync()` / `arraySync()` need OffscreenCanvas and throw), while `await t.data()`
// works on every backend. Use these helpers instead of dataSync / arraySync anywhere a model may run.
import * as tf from '@tensorflow/tfjs';

/**
 * The tensor's values; `dispose: true` frees the tensor after reading. Treat the array as read-only (on the cpu
 * backend it can be the tensor's own storage): copy it before changing it.
 */
export async function readData<D extends tf.DataType = tf.DataType>(
  t: tf.Tensor,
  opts: { dispose?: boolean } = {},
): Promise<tf.DataTypeMap[D]> {
  try {
    return (await t.data()) as tf.DataTypeMap[D];
  } finally {
    if (opts.dispose) t.dispose();
  }
}

/** The first value of a (scalar) tensor as a number; `dispose: true` frees the tensor after reading. */
export async function readScalar(t: tf.Tensor, opts: { dispose?: boolean } = {}): Promise<number> {
  const v = await readData(t, opts);
  if (v.length === 0) throw new Error(`readScalar: the tensor has no elements (shape [${t.shape}])`);
  return Number(v[0]);
}

/** Several scalars with one device read (stacked first), in order; the inputs are not disposed. */
export async function readScalars(ts: tf.Tensor[]): Promise<number[]> {
  if (ts.length === 0) return [];
  const stacked = tf.tidy(() => tf.stack(ts.map((t) => tf.reshape(tf.cast(t, 'float32'), []))));
  return Array.from(await readData<'float32'>(stacked, { dispose: true }));
}
