// TensorBoard event files (`<run>/tensorboard/events.out.tfevents.*`): what TensorBoard reads live, and what
// W&B imports (`wandb sync --sync-tensorboard`). The format: records framed as TFRecord (uint64 length, masked
// CRC-32C of the length, the data, masked CRC-32C of the data; little-endian), each holding one serialised
// `tensorflow.Event` protobuf. The first event names the file version; the rest carry a Summary of scalar values
// or PNG images. Only the protobuf fields written here are declared (tensorflow/core/util/event.proto and
// tensorflow/core/framework/summary.proto use the same field numbers).
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';
import CRC32C from 'crc-32/crc32c.js';

const SCHEMA = protobuf.Root.fromJSON({
  nested: {
    tensorflow: {
      nested: {
        Event: {
          oneofs: { what: { oneof: ['file_version', 'summary', 'session_log'] } },
          fields: {
            wall_time: { type: 'double', id: 1 },
            step: { type: 'int64', id: 2 },
            file_version: { type: 'string', id: 3 },
            summary: { type: 'Summary', id: 5 },
            session_log: { type: 'SessionLog', id: 7 },
          },
        },
        SessionLog: {
          fields: {
            status: { type: 'SessionStatus', id: 1 },
            checkpoint_path: { type: 'string', id: 2 },
            msg: { type: 'string', id: 3 },
          },
          nested: { SessionStatus: { values: { STATUS_UNSPECIFIED: 0, START: 1, STOP: 2, CHECKPOINT: 3 } } },
        },
        Summary: {
          fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
          nested: {
            Image: {
              fields: {
                height: { type: 'int32', id: 1 },
                width: { type: 'int32', id: 2 },
                colorspace: { type: 'int32', id: 3 },
                encoded_image_string: { type: 'bytes', id: 4 },
              },
            },
            Value: {
              oneofs: { value: { oneof: ['simple_value', 'image'] } },
              fields: {
                tag: { type: 'string', id: 1 },
                simple_value: { type: 'float', id: 2 },
                image: { type: 'Image', id: 4 },
              },
            },
          },
        },
      },
    },
  },
});
const EVENT = SCHEMA.lookupType('tensorflow.Event');
const SESSION_START = 1;

/** TFRecord's CRC: CRC-32C, rotated right by 15 bits plus a constant (so CRCs of CRCs are not trivial). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = CRC32C.buf(bytes) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, the data, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** Width, height and TensorBoard colourspace (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) from a PNG's header. */
export function pngHeader(png: Uint8Array, what: string): { width: number; height: number; colorspace: number } {
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (b.length < 26 || b.readUInt32BE(0) !== 0x89504e47 || b.toString('latin1', 12, 16) !== 'IHDR')
    throw new Error(`${what}: not a PNG image`);
  const colorType = b[25];
  const colorspace = ({ 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  if (colorspace === undefined) throw new Error(`${what}: PNG colour type ${colorType} is not valid`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), colorspace };
}

export interface TensorBoardOptions {
  /**
   * A run resumed from the checkpoint of this step (absent: a fresh run, step 0). Every file starts with a
   * SessionLog START at the step after it; TensorBoard purges from earlier files the events of that step and later,
   * i.e. what an interrupted run logged after its checkpoint. TensorBoard ignores the first START it sees in a run
   * (it marks the session's start), so a fresh run's file carries one too: otherwise the first resume's START would
   * be the ignored one and its steps would show twice.
   */
  resumedAfterStep?: number;
  /** Seconds since the epoch (tests). */
  now?: () => number;
}

/**
 * Appends events to a new file in `dir` (one per process run; TensorBoard reads every file of the folder). Each
 * event is written at once, so TensorBoard shows a run while it trains; `close()` fsyncs.
 */
export class TensorBoardWriter {
  private fd: number | null;
  private readonly now: () => number;

  private constructor(
    readonly file: string,
    fd: number,
    now: () => number,
  ) {
    this.fd = fd;
    this.now = now;
  }

  static open(dir: string, opts: TensorBoardOptions = {}): TensorBoardWriter {
    const now = opts.now ?? (() => Date.now() / 1000);
    mkdirSync(dir, { recursive: true });
    // TensorBoard's own naming: events.out.tfevents.<seconds>.<host>.<pid>.<n>
    const file = path.join(
      dir,
      `events.out.tfevents.${Math.floor(now())}.${os.hostname()}.${process.pid}.${nextFileId++}`,
    );
    const w = new TensorBoardWriter(file, openSync(file, 'wx'), now);
    w.write({ step: 0, file_version: 'brain.Event:2' });
    w.write({ step: (opts.resumedAfterStep ?? 0) + 1, session_log: { status: SESSION_START } });
    return w;
  }

  /** One event with a scalar per key (non-finite values are written as they are: TensorBoard shows NaN). */
  scalars(step: number, values: Record<string, number>): void {
    const value = Object.entries(values).map(([tag, v]) => ({ tag, simple_value: v }));
    if (value.length) this.write({ step, summary: { value } });
  }

  /** An image (PNG bytes) under `tag`. */
  image(step: number, tag: string, png: Uint8Array): void {
    const { width, height, colorspace } = pngHeader(png, `tensorboard image '${tag}'`);
    this.write({
      step,
      summary: { value: [{ tag, image: { width, height, colorspace, encoded_image_string: png } }] },
    });
  }

  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }

  private write(event: Record<string, unknown>): void {
    if (this.fd === null) throw new Error(`${this.file}: already closed`);
    const message = EVENT.fromObject({ wall_time: this.now(), ...event });
    writeSync(this.fd, tfRecord(EVENT.encode(message).finish()));
  }
}

let nextFileId = 0;
