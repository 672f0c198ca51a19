/**
 * Conditioning dropout for classifier-free guidance (open-muse: `encoder_hidden_states[mask] = empty_embeds`
 * with mask = rand(B) < cond_dropout_prob): a dropped sample's text states, attention mask and pooled vector are
 * replaced by those of the empty caption, so sampling can contrast prompt and empty-caption predictions.
 */
import type { Batch } from '../data/batch.ts';
import type { EmptyText } from '../data/empty-text.ts';
import type { SeededRandom } from '../data/random.ts';

/**
 * Class dropout (class-conditional models with null_class): each class id becomes the null class
 * `nullClass` (= num_classes) with probability `prob`, in place. Returns the indices dropped.
 */
export function dropClasses(classIds: Int32Array, nullClass: number, prob: number, rng: SeededRandom): number[] {
  const dropped: number[] = [];
  for (let b = 0; b < classIds.length; b++) {
    if (!(rng.next() < prob)) continue;
    classIds[b] = nullClass;
    dropped.push(b);
  }
  return dropped;
}

/** Returns the indices dropped (the batch's text arrays are changed in place). */
export function dropConditioning(batch: Batch, empty: EmptyText, prob: number, rng: SeededRandom): number[] {
  const dropped: number[] = [];
  if (!batch.textHidden || !batch.textShape || !batch.textMask) return dropped;
  const [B, L, D] = batch.textShape;
  if (empty.dim !== D) throw new Error(`empty-caption embedding has dim ${empty.dim}, the text cache ${D}`);
  for (let b = 0; b < B; b++) {
    if (!(rng.next() < prob)) continue;
    dropped.push(b);
    const len = Math.min(empty.length, L);
    const row = batch.textHidden.subarray(b * L * D, (b + 1) * L * D);
    row.fill(0);
    row.set(empty.hidden.subarray(0, len * D));
    batch.textMask.fill(0, b * L, (b + 1) * L);
    batch.textMask.fill(1, b * L, b * L + len);
    if (batch.textLengths) batch.textLengths[b] = len;
    if (batch.pooled && batch.pooledShape && empty.pooled) {
      const P = batch.pooledShape[1];
      batch.pooled.set(empty.pooled.subarray(0, P), b * P);
    }
  }
  return dropped;
}
