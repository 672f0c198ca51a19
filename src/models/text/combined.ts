// Combined T5 + CLIP conditioning (a checkpoint trained with `model.text_encoder: t5:DIR,clip:DIR`): both
// encoders run on the prompt and their states are packed as training packs the two text caches
// (src/train/data/combined-text.ts): per prompt the real T5 states, then the real CLIP states, then zero padding,
// features [T5 width | CLIP width] with zeros in the other encoder's columns; the pooled vector is CLIP's.
import * as tf from '@tensorflow/tfjs';
import {
  loadTextEncoder,
  textEncoderSpecs,
  type EncodedText,
  type TextEncoder,
  type TextEncoderOptions,
} from './encoders.ts';

/** One encoder handle over two: encode() packs their outputs; dim = a.dim + b.dim. */
export function combineTextEncoders(a: TextEncoder, b: TextEncoder): TextEncoder {
  if (a.pooledDim && b.pooledDim)
    throw new Error(
      `combined text encoders ${a.id} + ${b.id}: both have a pooled vector; combine one T5 and one CLIP encoder`,
    );
  const dim = a.dim + b.dim;
  return {
    id: `${a.id}+${b.id}`,
    kind: 't5+clip',
    tokenizer: a.tokenizer,
    dim,
    pooledDim: a.pooledDim ?? b.pooledDim,
    encode(texts: string[]): EncodedText {
      const x = a.encode(texts);
      const y = b.encode(texts);
      try {
        const B = texts.length;
        const [La, Lb] = [x.hidden.shape[1], y.hidden.shape[1]];
        const lengths = x.lengths.map((l, i) => l + y.lengths[i]);
        const L = Math.max(1, ...lengths);
        // Row (of the flattened [B * S, dim] states, S = La + Lb + 1) per packed position: T5 position t,
        // CLIP position La + t, or the appended zero row for padding. (A flat gather: tf.gather with batchDims
        // gives wrong rows on the wasm backend.)
        const S = La + Lb + 1;
        const idx = new Int32Array(B * L);
        for (let i = 0; i < B; i++) {
          for (let t = 0; t < L; t++)
            idx[i * L + t] = i * S + (t < x.lengths[i] ? t : t < lengths[i] ? La + (t - x.lengths[i]) : La + Lb);
        }
        const hidden = tf.tidy(() => {
          const ha = tf.pad(x.hidden, [
            [0, 0],
            [0, 0],
            [0, b.dim],
          ]);
          const hb = tf.pad(y.hidden, [
            [0, 0],
            [0, 0],
            [a.dim, 0],
          ]);
          const all = tf.reshape(tf.concat([ha, hb, tf.zeros([B, 1, dim])], 1), [B * S, dim]);
          return tf.reshape(tf.gather(all, tf.tensor1d(idx, 'int32')), [B, L, dim]) as tf.Tensor3D;
        });
        const ids = x.ids.map((r, i) => Int32Array.from([...r, ...y.ids[i]]));
        const pooled = x.pooled ?? y.pooled;
        (x.pooled ? y.pooled : x.pooled)?.dispose();
        return { ids, lengths, hidden, pooled };
      } finally {
        x.hidden.dispose();
        y.hidden.dispose();
      }
    },
    dispose() {
      a.dispose();
      b.dispose();
    },
  };
}

/** loadTextEncoder for a sampling.json spec: one encoder, or two comma-separated (combined conditioning). */
export async function loadTextEncoders(spec: string, opts: TextEncoderOptions = {}): Promise<TextEncoder> {
  const specs = textEncoderSpecs(spec);
  if (specs.length === 1) return loadTextEncoder(specs[0], opts);
  if (specs.length !== 2)
    throw new Error(`text encoder '${spec}': expected one spec or two comma-separated (T5 and CLIP)`);
  const a = await loadTextEncoder(specs[0], opts);
  try {
    return combineTextEncoders(a, await loadTextEncoder(specs[1], opts));
  } catch (err) {
    a.dispose();
    throw err;
  }
}
