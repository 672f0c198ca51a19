/**
 * Removes samples from a tar at the byte level: members of the other samples are copied unchanged (header and
 * data blocks as they are on disk), so a rewritten shard differs from the original only by the missing members.
 * Handles ustar names with a prefix, pax (`x`) and GNU long-name (`L`, `K`) headers, which belong to the member
 * that follows them; global pax headers (`g`) and everything after the end-of-archive blocks are kept.
 */
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { once } from 'node:events';
import { createAtomicStream } from '../util/atomic.ts';
import { splitMemberName } from './tar-reader.ts';

const BLOCK = 512;

interface Member {
  /** Byte range of the member including its own extension headers. */
  start: number;
  end: number;
  key: string;
  /** The member's extension (splitMemberName), '' for headers. */
  ext: string;
  /** Payload size when it is a regular file, else 0. */
  fileBytes: number;
}

export interface TarScan {
  members: Member[];
  /** Offset where the end-of-archive blocks (or the file end) start. */
  tailStart: number;
  size: number;
}

function cstr(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

function parseSize(h: Buffer, file: string, at: number): number {
  if (h[124] & 0x80) {
    // base-256 (GNU) for sizes that do not fit 11 octal digits
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i];
    return n;
  }
  const s = cstr(h, 124, 12).trim();
  if (!/^[0-7]*$/.test(s))
    throw new Error(`${file}: corrupt tar header at byte ${at} (size field ${JSON.stringify(s)})`);
  return s ? parseInt(s, 8) : 0;
}

function checkChecksum(h: Buffer, file: string, at: number): void {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  const stored = parseInt(cstr(h, 148, 8).trim(), 8);
  if (stored !== sum) throw new Error(`${file}: corrupt tar header at byte ${at} (checksum mismatch)`);
}

/** `path=` from a pax extended header's records (`<len> <key>=<value>\n`...). */
function paxPath(data: Buffer): string | undefined {
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(data.toString('ascii', i, sp), 10);
    if (!(len > 0)) break;
    const rec = data.toString('utf8', sp + 1, i + len - 1);
    if (rec.startsWith('path=')) return rec.slice(5);
    i += len;
  }
  return undefined;
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  return buf.subarray(0, readSync(fd, buf, 0, len, pos));
}

/**
 * Lists the members of a tar by reading only headers (and the small extension headers' data). Synchronous
 * reads: one small read per member, where a thread-pool round trip would cost more than the read.
 */
export function scanTar(file: string): TarScan {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const members: Member[] = [];
    let pos = 0;
    let pendingStart = -1;
    let longName: string | undefined;
    while (pos + BLOCK <= size) {
      const h = readAt(fd, pos, BLOCK);
      if (h.every((b) => b === 0)) break;
      checkChecksum(h, file, pos);
      const dataSize = parseSize(h, file, pos);
      const next = pos + BLOCK + Math.ceil(dataSize / BLOCK) * BLOCK;
      if (next > size) throw new Error(`${file}: truncated tar (member at byte ${pos} runs past the end)`);
      const type = String.fromCharCode(h[156] || 0x30);
      if (type === 'x' || type === 'L' || type === 'K') {
        if (pendingStart < 0) pendingStart = pos;
        if (type !== 'K') {
          const data = readAt(fd, pos + BLOCK, dataSize);
          const name = type === 'x' ? paxPath(data) : cstr(data, 0, data.length);
          if (name !== undefined) longName = name;
        }
      } else if (type === 'g') {
        members.push({ start: pos, end: next, key: '', ext: '', fileBytes: 0 });
      } else {
        const prefix = h.toString('ascii', 257, 262) === 'ustar' ? cstr(h, 345, 155) : '';
        const name = longName ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
        const regular = type === '0' || type === '7';
        members.push({
          start: pendingStart >= 0 ? pendingStart : pos,
          end: next,
          ...splitMemberName(name),
          fileBytes: regular ? dataSize : 0,
        });
        pendingStart = -1;
        longName = undefined;
      }
      pos = next;
    }
    return { members, tailStart: pos, size };
  } finally {
    closeSync(fd);
  }
}

export interface TarFilterResult {
  /** Keys that had members in the tar and were dropped. */
  removedKeys: Set<string>;
  /** Payload bytes of the regular files kept (the stats' `bytes_written`). */
  keptFileBytes: number;
}

/**
 * Writes the tar without the members of `drop` keys (tmp + fsync + rename). Leaves the file untouched when
 * none of them is in it.
 */
export async function filterTar(file: string, drop: ReadonlySet<string>): Promise<TarFilterResult> {
  const scan = scanTar(file);
  const removedKeys = new Set<string>();
  let keptFileBytes = 0;
  // Kept byte ranges, adjacent members merged, so the copy is a few large reads.
  const ranges: Array<[number, number]> = [];
  for (const m of scan.members) {
    if (m.key && drop.has(m.key)) {
      removedKeys.add(m.key);
      continue;
    }
    keptFileBytes += m.fileBytes;
    const last = ranges[ranges.length - 1];
    if (last && last[1] === m.start) last[1] = m.end;
    else ranges.push([m.start, m.end]);
  }
  if (removedKeys.size === 0) return { removedKeys, keptFileBytes };
  const last = ranges[ranges.length - 1];
  if (last && last[1] === scan.tailStart) last[1] = scan.size;
  else ranges.push([scan.tailStart, scan.size]);

  const out = await createAtomicStream(file);
  // A plain copy loop: pipeline(..., { end: false }) into one stream leaves its listeners on it, one set per range
  // (MaxListenersExceededWarning on a shard with many removals).
  for (const [a, b] of ranges) {
    if (b <= a) continue;
    for await (const chunk of createReadStream(file, { start: a, end: b - 1 })) {
      if (!out.stream.write(chunk)) await once(out.stream, 'drain');
    }
  }
  await out.commit();
  return { removedKeys, keptFileBytes };
}
