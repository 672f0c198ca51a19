// Text / class conditioning tensors for generate(): prompts' hidden states padded to the batch's longest
// prompt with an attention mask (1 = real token), plus the pooled vector for encoders that have one.
import { tf } from '../runtime/backend.ts';
import type { TextEncoder } from '../models/text/index.ts';
import type { Conditioning } from './generate.ts';

export function encodePrompts(encoder: TextEncoder, prompts: string[]): Conditioning {
  if (prompts.length === 0) throw new Error('encodePrompts: no prompts');
  const out = encoder.encode(prompts);
  const len = out.hidden.shape[1];
  const mask = new Int32Array(prompts.length * len);
  out.lengths.forEach((l, b) => mask.fill(1, b * len, b * len + l));
  return { hidden: out.hidden, mask: tf.tensor2d(mask, [prompts.length, len], 'int32'), pooled: out.pooled };
}

export function classConditioning(classIds: number[]): Conditioning {
  return { classIds: tf.tensor1d(classIds, 'int32') };
}

export function disposeConditioning(c: Conditioning | undefined): void {
  if (!c) return;
  for (const t of [c.hidden, c.mask, c.pooled, c.classIds, c.lowresIds]) t?.dispose();
}
