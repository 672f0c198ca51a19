/**
 * MUSE / MaskGIT training masks (open-muse train_muse.py `mask_or_random_replace_tokens`): per image a time
 * t ~ U[0, 1), round(N · max(schedule(t), min_masking_rate)) tokens (at least 1) chosen uniformly at random are
 * replaced by the mask token; the loss scores only those positions (labels elsewhere = IGNORE_INDEX).
 * Randomness comes from a SeededRandom, so a step's masks depend only on the run seed and the step.
 */
import { numTokensToMask, type MaskSchedule } from '../../models/schedules.ts';
import { IGNORE_INDEX } from '../../models/transformer/loss.ts';
import type { SeededRandom } from '../data/random.ts';

export interface MaskedBatch {
  /** [B, N] ids with masked positions set to maskId. */
  inputIds: Int32Array;
  /** [B, N] original id where masked, IGNORE_INDEX elsewhere. */
  labels: Int32Array;
  /** Fraction of tokens masked per image. */
  maskRates: Float32Array;
}

export function maskTokens(
  imageIds: Int32Array,
  batch: number,
  seqLen: number,
  maskId: number,
  rng: SeededRandom,
  schedule: MaskSchedule,
  minMaskingRate = 0,
): MaskedBatch {
  if (imageIds.length !== batch * seqLen)
    throw new Error(`maskTokens: ${imageIds.length} ids for ${batch} x ${seqLen}`);
  const inputIds = imageIds.slice();
  const labels = new Int32Array(batch * seqLen).fill(IGNORE_INDEX);
  const maskRates = new Float32Array(batch);
  const order = new Int32Array(seqLen);
  for (let b = 0; b < batch; b++) {
    const count = Math.min(seqLen, numTokensToMask(seqLen, rng.next(), schedule, minMaskingRate));
    // Partial Fisher–Yates: the first `count` entries become a uniform random subset of positions.
    for (let i = 0; i < seqLen; i++) order[i] = i;
    for (let i = 0; i < count; i++) {
      const j = i + rng.below(seqLen - i);
      const tmp = order[i];
      order[i] = order[j];
      order[j] = tmp;
      const pos = b * seqLen + order[i];
      labels[pos] = imageIds[pos];
      inputIds[pos] = maskId;
    }
    maskRates[b] = count / seqLen;
  }
  return { inputIds, labels, maskRates };
}
