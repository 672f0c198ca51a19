// Multi-axis self-attention (MaxViT-style block + grid) over a token grid: half of the heads attend within
// non-overlapping b×b blocks (local), the other half within g×g grids of tokens spaced (H/g, W/g) apart
// (sparse, global). Cost per layer O(n·(b² + g²)) instead of O(n²). Partitions use rank-4 transposes only.
import * as tf from '@tensorflow/tfjs';
import { attention, MASK_VALUE } from './attention.ts';

export interface MultiAxisOptions {
  /** Grid of the T = h·w tokens (row-major). */
  height: number;
  width: number;
  /** Block side b (h and w divisible by b). */
  block: number;
  /** Grid side g (h and w divisible by g). */
  grid: number;
  scale: number;
  dropout?: number;
  dropoutSeed?: number;
}

export function checkMultiAxis(height: number, width: number, heads: number, block: number, grid: number): void {
  const bad = (why: string) => {
    throw new Error(`multi-axis attention: ${why}`);
  };
  if (heads % 2) bad(`needs an even number of heads (half block, half grid), got ${heads}`);
  if (!Number.isInteger(block) || block < 1 || height % block || width % block)
    bad(`block_size ${block} must divide the ${height}x${width} token grid`);
  if (!Number.isInteger(grid) || grid < 1 || height % grid || width % grid)
    bad(`grid_size ${grid} must divide the ${height}x${width} token grid`);
}

/** [B, h·w, C] -> [B·(h/b)·(w/b), b·b, C]: one row per b×b block. */
export function blockPartition(x: tf.Tensor, h: number, w: number, b: number): tf.Tensor3D {
  const [n, , c] = x.shape as [number, number, number];
  const y = tf.transpose(tf.reshape(x, [n * (h / b), b, w / b, b * c]), [0, 2, 1, 3]);
  return tf.reshape(y, [n * (h / b) * (w / b), b * b, c]);
}

export function blockUnpartition(x: tf.Tensor, n: number, h: number, w: number, b: number): tf.Tensor3D {
  const c = x.shape[2] as number;
  const y = tf.transpose(tf.reshape(x, [n * (h / b), w / b, b, b * c]), [0, 2, 1, 3]);
  return tf.reshape(y, [n, h * w, c]);
}

/** [B, h·w, C] -> [B·(h/g)·(w/g), g·g, C]: one row per group of tokens spaced (h/g, w/g) apart. */
export function gridPartition(x: tf.Tensor, h: number, w: number, g: number): tf.Tensor3D {
  const [n, , c] = x.shape as [number, number, number];
  const [sh, sw] = [h / g, w / g];
  // row i = p·sh + u, column j = q·sw + v; the group is (u, v), the member (p, q).
  const a = tf.transpose(tf.reshape(x, [n * g, sh, g, sw * c]), [0, 2, 1, 3]); // [n·p, q, u, (v, c)]
  const y = tf.transpose(tf.reshape(a, [n, g * g, sh * sw, c]), [0, 2, 1, 3]); // [n, (u, v), (p, q), c]
  return tf.reshape(y, [n * sh * sw, g * g, c]);
}

export function gridUnpartition(x: tf.Tensor, n: number, h: number, w: number, g: number): tf.Tensor3D {
  const c = x.shape[2] as number;
  const [sh, sw] = [h / g, w / g];
  const a = tf.transpose(tf.reshape(x, [n, sh * sw, g * g, c]), [0, 2, 1, 3]); // [n, (p, q), (u, v), c]
  const y = tf.transpose(tf.reshape(a, [n * g, g, sh, sw * c]), [0, 2, 1, 3]); // [n·p, u, q, (v, c)]
  return tf.reshape(y, [n, h * w, c]);
}

/** q, k, v [B, T, heads·hd] -> [B, T, heads·hd]; heads [0, H/2) block attention, [H/2, H) grid attention. */
export function multiAxisAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  heads: number,
  o: MultiAxisOptions,
): tf.Tensor3D {
  const [n, t, d] = q.shape as [number, number, number];
  if (t !== o.height * o.width) throw new Error(`multi-axis attention: ${t} tokens for a ${o.height}x${o.width} grid`);
  checkMultiAxis(o.height, o.width, heads, o.block, o.grid);
  const half = d / 2;
  const split = (x: tf.Tensor) => tf.split(x, [half, half], 2);
  const [qb, qg] = split(q);
  const [kb, kg] = split(k);
  const [vb, vg] = split(v);
  const att = { scale: o.scale, dropout: o.dropout };
  const { height: h, width: w, block: b, grid: g } = o;
  const ob = attention(
    blockPartition(qb, h, w, b),
    blockPartition(kb, h, w, b),
    blockPartition(vb, h, w, b),
    heads / 2,
    { ...att, dropoutSeed: o.dropoutSeed },
  );
  const og = attention(gridPartition(qg, h, w, g), gridPartition(kg, h, w, g), gridPartition(vg, h, w, g), heads / 2, {
    ...att,
    dropoutSeed: o.dropoutSeed === undefined ? undefined : o.dropoutSeed + 1,
  });
  return tf.concat([blockUnpartition(ob, n, h, w, b), gridUnpartition(og, n, h, w, g)], 2) as tf.Tensor3D;
}

/**
 * The same pattern as an additive score bias for full attention, [1, heads, T, T]: 0 where token j is in
 * token i's block (first half of the heads) or grid group (second half), MASK_VALUE elsewhere. For tests.
 */
export function multiAxisBias(h: number, w: number, heads: number, b: number, g: number): tf.Tensor4D {
  const t = h * w;
  const [sh, sw] = [h / g, w / g];
  const data = new Float32Array(heads * t * t).fill(MASK_VALUE);
  for (let i = 0; i < t; i++) {
    const [ri, ci] = [Math.floor(i / w), i % w];
    for (let j = 0; j < t; j++) {
      const [rj, cj] = [Math.floor(j / w), j % w];
      const sameBlock = Math.floor(ri / b) === Math.floor(rj / b) && Math.floor(ci / b) === Math.floor(cj / b);
      const sameGroup = ri % sh === rj % sh && ci % sw === cj % sw;
      for (let hd = 0; hd < heads; hd++) {
        if (hd < heads / 2 ? sameBlock : sameGroup) data[(hd * t + i) * t + j] = 0;
      }
    }
  }
  return tf.tensor4d(data, [1, heads, t, t]);
}
