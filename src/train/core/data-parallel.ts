/**
 * Data-parallel checks shared by the stages: a checksum of the weights (compared across ranks every few steps
 * and at each save) and of the resolved config (compared before the first step).
 */
import * as tf from '@tensorflow/tfjs';
import crc32 from 'crc-32';
import { readData } from '../../runtime/read.ts';

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
