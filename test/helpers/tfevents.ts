/**
 * Reads TensorBoard event files back for the tests, independently of the writer: its own TFRecord parser and
 * CRC check, and protobuf types parsed from the .proto text of TensorFlow's event.proto / summary.proto (the
 * subset used), so a wrong field number or framing in the writer fails here.
 */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import CRC32C from 'crc-32/crc32c.js';

const PROTO = `
syntax = "proto3";
package tensorflow;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    SessionLog session_log = 7;
  }
}
message SessionLog {
  enum SessionStatus { STATUS_UNSPECIFIED = 0; START = 1; STOP = 2; CHECKPOINT = 3; }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}
message Summary {
  message Image {
    int32 height = 1;
    int32 width = 2;
    int32 colorspace = 3;
    bytes encoded_image_string = 4;
  }
  message Value {
    string node_name = 7;
    string tag = 1;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      Image image = 4;
    }
  }
  repeated Value value = 1;
}
`;
const EVENT = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('tensorflow.Event');

const masked = (b: Uint8Array) => {
  const crc = CRC32C.buf(b) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
};

export interface DecodedEvent {
  wall_time: number;
  step: number;
  file_version?: string;
  session_log?: { status: string };
  summary?: {
    value: Array<{
      tag: string;
      simple_value?: number;
      image?: { height: number; width: number; colorspace: number; encoded_image_string: Buffer };
    }>;
  };
}

/** Every event of a file; throws on a bad length or data CRC, or a truncated record. */
export function readEvents(file: string): DecodedEvent[] {
  const buf = readFileSync(file);
  const out: DecodedEvent[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 12 > buf.length) throw new Error(`${file}: truncated record header at byte ${at}`);
    const len = Number(buf.readBigUInt64LE(at));
    if (buf.readUInt32LE(at + 8) !== masked(buf.subarray(at, at + 8)))
      throw new Error(`${file}: bad length CRC at byte ${at}`);
    const data = buf.subarray(at + 12, at + 12 + len);
    if (at + 16 + len > buf.length) throw new Error(`${file}: truncated record at byte ${at}`);
    if (buf.readUInt32LE(at + 12 + len) !== masked(data)) throw new Error(`${file}: bad data CRC at byte ${at}`);
    out.push(
      EVENT.toObject(EVENT.decode(data), {
        longs: Number,
        enums: String,
        bytes: Buffer,
        defaults: false,
      }) as DecodedEvent,
    );
    at += 16 + len;
  }
  return out;
}
