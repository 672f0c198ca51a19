/**
 * Data-parallel checks shared by the stages: the global batch splits over the ranks, a checksum of the weights
 * (compared across ranks every few steps and at each save) and of the resolved config (compared before the first step).
 */
import * as tf from '@tensorflow/tfjs';
import crc32 from 'crc-32';
import { readData } from '../../runtime/read.ts';
import type { TrainConfig } from '../config/schema.ts';

/** CRC-32 of the tensors' float32 bytes, in the map's order (one device read per tensor). */
export async function tensorsChecksum(tensors: Map<string, tf.Tensor>): Promise<number> {
  let h = 0;
  for (const [name, t] of tensors) {
    h = crc32.str(name, h);
    const v = (await readData(t)) as Float32Array | Int32Array | Uint8Array;
    h = crc32.buf(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), h);
  }
  return h >>> 0;
}

/** CRC-32 of a JSON value (the resolved config): ranks given different configs or flags are told apart. */
export function jsonChecksum(value: unknown): number {
  return crc32.str(JSON.stringify(value)) >>> 0;
}

/**
 * training.batch_size is the global batch of one optimizer update: it is split evenly over the ranks, and each
 * rank's share into gradient_accumulation_steps equal micro-batches. Checked before anything is read.
 */
export function assertBatchSplits(cfg: TrainConfig, ranks: number): void {
  const t = cfg.training;
  const pieces = ranks * t.gradient_accumulation_steps;
  if (t.batch_size % pieces !== 0) {
    throw new Error(
      `training.batch_size ${t.batch_size} (the global batch of one optimizer update) does not divide by ${ranks} rank${ranks === 1 ? '' : 's'} x ` +
        `${t.gradient_accumulation_steps} accumulation step${t.gradient_accumulation_steps === 1 ? '' : 's'} = ${pieces}: each rank trains ` +
        `batch_size / ranks samples per update in micro-batches of batch_size / ${pieces}. Use a batch_size that is a multiple of ${pieces}, ` +
        'or another number of ranks or accumulation steps',
    );
  }
}
