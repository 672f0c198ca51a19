/** A loader batch: samples (copied rows of the caches) packed into flat typed arrays with their shapes. */
import { decodeHalfInto } from '../../runtime/float16.ts';

export interface Sample {
  /** Shard list index and row: where to read it again (resume). */
  ref: number;
  row: number;
  key: string;
  tokens: Uint16Array | Int32Array;
  gridH: number;
  gridW: number;
  /** float16 bits [textLength * dim]. */
  hidden?: Uint16Array;
  textLength?: number;
  dim?: number;
  pooled?: Float32Array;
  cls?: number;
}

export interface Batch {
  /** Samples in the batch (B; the batch size, or less for a short last batch with dropLast: false). */
  size: number;
  /** Epoch the samples belong to. */
  epoch: number;
  keys: string[];
  /** [B, N] image token ids, N = gridH * gridW. */
  imageIds: Int32Array;
  imageShape: [number, number];
  gridH: number;
  gridW: number;
  /** [B] ImageNet class ids. */
  classIds?: Int32Array;
  /** [B, L, D] text states as float32, zero-padded after each text's length. */
  textHidden?: Float32Array;
  textShape?: [number, number, number];
  /** [B, L]: 1 for real positions, 0 for padding. */
  textMask?: Uint8Array;
  /** [B] real text lengths (capped at L). */
  textLengths?: Int32Array;
  /** [B, P] pooled text vectors (CLIP). */
  pooled?: Float32Array;
  pooledShape?: [number, number];
}

export function assembleBatch(samples: Sample[], epoch: number, textMaxLength?: number): Batch {
  const B = samples.length;
  const first = samples[0];
  const n = first.tokens.length;
  const imageIds = new Int32Array(B * n);
  for (let i = 0; i < B; i++) {
    const t = samples[i].tokens;
    if (t.length !== n)
      throw new Error(
        `batch: sample ${samples[i].key} has ${t.length} image tokens, ${first.key} has ${n} (caches of different VQ grids)`,
      );
    imageIds.set(t, i * n);
  }
  const batch: Batch = {
    size: B,
    epoch,
    keys: samples.map((s) => s.key),
    imageIds,
    imageShape: [B, n],
    gridH: first.gridH,
    gridW: first.gridW,
  };
  if (first.cls !== undefined) batch.classIds = Int32Array.from(samples, (s) => s.cls!);
  if (first.hidden) Object.assign(batch, packText(samples, textMaxLength));
  return batch;
}

function packText(samples: Sample[], textMaxLength?: number): Partial<Batch> {
  const B = samples.length;
  const D = samples[0].dim!;
  const L = textMaxLength ?? Math.max(1, ...samples.map((s) => s.textLength!));
  const hidden = new Float32Array(B * L * D);
  const mask = new Uint8Array(B * L);
  const lengths = new Int32Array(B);
  for (let i = 0; i < B; i++) {
    const s = samples[i];
    if (s.dim !== D) throw new Error(`batch: sample ${s.key} has text dim ${s.dim}, ${samples[0].key} has ${D}`);
    const len = Math.min(s.textLength!, L);
    lengths[i] = len;
    mask.fill(1, i * L, i * L + len);
    decodeHalfInto(s.hidden!, 0, len * D, hidden, i * L * D);
  }
  const out: Partial<Batch> = { textHidden: hidden, textShape: [B, L, D], textMask: mask, textLengths: lengths };
  const P = samples[0].pooled?.length;
  if (P) {
    const pooled = new Float32Array(B * P);
    samples.forEach((s, i) => pooled.set(s.pooled!, i * P));
    out.pooled = pooled;
    out.pooledShape = [B, P];
  }
  return out;
}

/** Rows [lo, hi) of a batch (a data-parallel rank's share of a global batch); the arrays are views, not copies. */
export function sliceBatch(b: Batch, lo: number, hi: number): Batch {
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && 0 <= lo && lo < hi && hi <= b.size))
    throw new Error(`sliceBatch: rows [${lo}, ${hi}) of a batch of ${b.size}`);
  const n = hi - lo;
  const N = b.imageShape[1];
  const out: Batch = {
    ...b,
    size: n,
    keys: b.keys.slice(lo, hi),
    imageIds: b.imageIds.subarray(lo * N, hi * N),
    imageShape: [n, N],
  };
  if (b.classIds) out.classIds = b.classIds.subarray(lo, hi);
  if (b.textHidden && b.textShape && b.textMask) {
    const [, L, D] = b.textShape;
    out.textHidden = b.textHidden.subarray(lo * L * D, hi * L * D);
    out.textShape = [n, L, D];
    out.textMask = b.textMask.subarray(lo * L, hi * L);
  }
  if (b.textLengths) out.textLengths = b.textLengths.subarray(lo, hi);
  if (b.pooled && b.pooledShape) {
    const P = b.pooledShape[1];
    out.pooled = b.pooled.subarray(lo * P, hi * P);
    out.pooledShape = [n, P];
  }
  return out;
}
