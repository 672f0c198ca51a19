/**
 * Combined T5 + CLIP conditioning (`model.text_encoder: t5:DIR,clip:DIR`): two text caches of the same dataset
 * read side by side and packed into one cross-attention input.
 *
 * Packing: each sample's real T5 states are followed by its real CLIP states along the sequence, then padding;
 * the feature axis is the two widths side by side ([D1 | D2]), T5 rows zero in the CLIP columns and CLIP rows
 * zero in the T5 columns. The transformer's encoder_proj (encoder_hidden_size = D1 + D2) is then one [D, D1 + D2]
 * matrix = [W_t5 | W_clip]: it projects T5 states by W_t5 and CLIP states by W_clip to the model width, so the
 * model cross-attends to both projected sequences concatenated (with their masks; cross-attention has no
 * positions, so real tokens first and padding last is the same as [T5 | pad | CLIP | pad]). The bias and the
 * layer norm after the projection are shared by the two. The pooled vector is the CLIP one (AdaLN).
 * The empty caption is packed the same way, so conditioning dropout drops both encoders together.
 */
import {
  openTokenDataset,
  type Batch,
  type LoaderState,
  type TokenDataset,
  type TokenDatasetOptions,
} from './loader.ts';
import type { EmptyText } from './empty-text.ts';

/** One encoder's text of a batch: [B, L, D] float32 states (valid up to lengths[b]) and optional pooled [B, P]. */
export interface TextPart {
  hidden: Float32Array;
  shape: [number, number, number];
  lengths: Int32Array;
  pooled?: Float32Array;
  pooledDim?: number;
}

export interface PackedText {
  hidden: Float32Array;
  shape: [number, number, number];
  mask: Uint8Array;
  lengths: Int32Array;
  pooled?: Float32Array;
  pooledShape?: [number, number];
}

/** Packs two encoders' texts (same batch size) as described above. `length`: the packed L (default the longest). */
export function packTextParts(a: TextPart, b: TextPart, length?: number): PackedText {
  const [B, La, Da] = a.shape;
  const [Bb, Lb, Db] = b.shape;
  if (B !== Bb) throw new Error(`combined text: the two text caches give ${B} and ${Bb} samples`);
  if (a.pooled && b.pooled)
    throw new Error('combined text: both text caches have a pooled vector; combine one T5 and one CLIP cache');
  const lengths = Int32Array.from({ length: B }, (_, i) => Math.min(a.lengths[i], La) + Math.min(b.lengths[i], Lb));
  const L = length ?? Math.max(1, ...lengths);
  const D = Da + Db;
  const hidden = new Float32Array(B * L * D);
  const mask = new Uint8Array(B * L);
  for (let i = 0; i < B; i++) {
    const la = Math.min(a.lengths[i], La);
    const lb = Math.min(b.lengths[i], Lb);
    if (la + lb > L)
      throw new Error(`combined text: sample ${i} has ${la} + ${lb} text tokens, more than the packed length ${L}`);
    for (let t = 0; t < la; t++)
      hidden.set(a.hidden.subarray((i * La + t) * Da, (i * La + t + 1) * Da), (i * L + t) * D);
    for (let t = 0; t < lb; t++)
      hidden.set(b.hidden.subarray((i * Lb + t) * Db, (i * Lb + t + 1) * Db), (i * L + la + t) * D + Da);
    mask.fill(1, i * L, i * L + la + lb);
  }
  const out: PackedText = { hidden, shape: [B, L, D], mask, lengths };
  const pooledSide = a.pooled ? a : b.pooled ? b : undefined;
  if (pooledSide) {
    out.pooled = pooledSide.pooled;
    out.pooledShape = [B, pooledSide.pooledDim ?? pooledSide.pooled!.length / B];
  }
  return out;
}

function partOf(b: Batch, what: string): TextPart {
  if (!b.textHidden || !b.textShape || !b.textLengths)
    throw new Error(`combined text: the ${what} loader gave no text states`);
  return {
    hidden: b.textHidden,
    shape: b.textShape,
    lengths: b.textLengths,
    pooled: b.pooled,
    pooledDim: b.pooledShape?.[1],
  };
}

function emptyPart(e: EmptyText, maxLength?: number): TextPart {
  const len = Math.min(e.length, maxLength ?? e.length);
  return {
    hidden: e.hidden.subarray(0, len * e.dim),
    shape: [1, len, e.dim],
    lengths: Int32Array.of(len),
    pooled: e.pooled,
    pooledDim: e.pooled?.length,
  };
}

/** The two empty-caption embeddings packed into one (what dropout puts in place of a dropped sample's text). */
export function packEmptyTexts(a: EmptyText, b: EmptyText, maxLength?: number): EmptyText {
  const p = packTextParts(emptyPart(a, maxLength), emptyPart(b, maxLength));
  return { hidden: p.hidden, length: p.lengths[0], dim: p.shape[2], pooled: p.pooled };
}

interface CombinedState {
  combined: [LoaderState, LoaderState];
}

/**
 * A loader over the token cache with two text caches (`textIds`, in the order of model.text_encoder), read by two
 * loaders with the same seed and shards, checked key by key, each batch's texts packed (packTextParts).
 */
export async function openCombinedTextDataset(
  opts: TokenDatasetOptions,
  textIds: [string, string],
): Promise<TokenDataset> {
  const first = await openTokenDataset({ ...opts, textId: textIds[0] });
  const second = await openTokenDataset({ ...opts, textId: textIds[1], classIds: false });
  // With text_max_length each encoder is capped at it, so the packed length is fixed too.
  const length = opts.textMaxLength ? 2 * opts.textMaxLength : undefined;
  const next = async (): Promise<Batch> => {
    const [x, y] = await Promise.all([first.next(), second.next()]);
    const i = x.keys.findIndex((k, j) => k !== y.keys[j]);
    if (x.size !== y.size || i >= 0) {
      throw new Error(
        `the text caches text/${textIds[0]} and text/${textIds[1]} do not hold the same samples ` +
          `(sample ${x.keys[i] ?? '?'} vs ${y.keys[i] ?? '?'}): re-run muse-data tokenize with both encoders (--text A,B) over the same shards`,
      );
    }
    const p = packTextParts(partOf(x, `text/${textIds[0]}`), partOf(y, `text/${textIds[1]}`), length);
    return {
      ...x,
      textHidden: p.hidden,
      textShape: p.shape,
      textMask: p.mask,
      textLengths: p.lengths,
      pooled: p.pooled,
      pooledShape: p.pooledShape,
    };
  };
  return {
    next,
    state: () => ({ combined: [first.state(), second.state()] }) as unknown as LoaderState,
    async restore(state: LoaderState) {
      const s = state as unknown as CombinedState;
      if (!s || !Array.isArray(s.combined) || s.combined.length !== 2) {
        throw new Error(
          'checkpoint loader state is not a combined-text (two text caches) state: was it written with one text encoder?',
        );
      }
      await first.restore(s.combined[0]);
      await second.restore(s.combined[1]);
    },
    emptyText: async () => packEmptyTexts(await first.emptyText(), await second.emptyText(), opts.textMaxLength),
    shardCount: first.shardCount,
    async *[Symbol.asyncIterator]() {
      for (;;) yield await next();
    },
  };
}
