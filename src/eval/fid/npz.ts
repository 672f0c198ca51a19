// FID statistics as .npz, the format pytorch-fid reads and writes (`np.savez(path, mu=mu, sigma=sigma)`):
// a zip of .npy arrays, stored uncompressed. Written with a small zip writer (stored entries, CRC-32 from
// node:zlib); read back for stored and deflated entries (np.savez_compressed). Extra arrays pytorch-fid
// ignores: `n` and `muse_meta` (JSON as uint8) with what the statistics were computed from.
import { promises as fsp } from 'node:fs';
import zlib from 'node:zlib';
import { writeFileAtomic } from '../../util/atomic.ts';
import type { FeatureStats } from './statistics.ts';

interface NpyArray {
  descr: string;
  shape: number[];
  data: Buffer;
}

function npy(descr: string, shape: number[], data: Buffer): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), data]);
}

function parseNpy(buf: Buffer, name: string): NpyArray {
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${name}: not a .npy array`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const off = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', off, off + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined)
    throw new Error(`${name}: unreadable .npy header ${header.trim()}`);
  if (fortran === 'True') throw new Error(`${name}: Fortran-ordered arrays are not supported`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  return { descr, shape, data: buf.subarray(off + hlen) };
}

function zip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = zlib.crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(0, 10); // time/date
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt32LE(0, 12);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(e.data.length, 20);
    central.writeUInt32LE(e.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, e.data);
    centrals.push(central, name);
    offset += 30 + name.length + e.data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

function unzip(buf: Buffer, file: string): Map<string, Buffer> {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error(`${file}: not an .npz (zip) file`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: corrupt zip directory`);
    const method = buf.readUInt16LE(p + 10);
    let csize = buf.readUInt32LE(p + 20);
    const nlen = buf.readUInt16LE(p + 28);
    const xlen = buf.readUInt16LE(p + 30);
    const clen = buf.readUInt16LE(p + 32);
    let local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nlen);
    // numpy writes zip64 extra fields for large arrays: sizes / offset of 0xffffffff are in the extra field.
    if (csize === 0xffffffff || local === 0xffffffff) {
      let q = p + 46 + nlen;
      const xend = q + xlen;
      while (q < xend) {
        const id = buf.readUInt16LE(q);
        const size = buf.readUInt16LE(q + 2);
        if (id === 1) {
          let r = q + 4;
          if (buf.readUInt32LE(p + 24) === 0xffffffff) r += 8;
          if (csize === 0xffffffff) {
            csize = Number(buf.readBigUInt64LE(r));
            r += 8;
          }
          if (local === 0xffffffff) local = Number(buf.readBigUInt64LE(r));
        }
        q += 4 + size;
      }
    }
    const lnlen = buf.readUInt16LE(local + 26);
    const lxlen = buf.readUInt16LE(local + 28);
    const start = local + 30 + lnlen + lxlen;
    const raw = buf.subarray(start, start + csize);
    out.set(
      name,
      method === 0
        ? raw
        : method === 8
          ? zlib.inflateRawSync(raw)
          : (() => {
              throw new Error(`${file}: ${name} uses zip method ${method}`);
            })(),
    );
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

const f64Bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Writes mu, sigma (float64) and muse's metadata, atomically. */
export async function saveStatsNpz(file: string, s: FeatureStats, meta: Record<string, unknown> = {}): Promise<void> {
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  await writeFileAtomic(
    file,
    zip([
      { name: 'mu.npy', data: npy('<f8', [s.dim], f64Bytes(s.mu)) },
      { name: 'sigma.npy', data: npy('<f8', [s.dim, s.dim], f64Bytes(s.sigma)) },
      { name: 'n.npy', data: npy('<i8', [], Buffer.from(new BigInt64Array([BigInt(s.n)]).buffer)) },
      { name: 'muse_meta.npy', data: npy('|u1', [metaBytes.length], metaBytes) },
    ]),
  );
}

function toFloat64(a: NpyArray, name: string): Float64Array {
  if (a.descr === '<f8')
    return new Float64Array(a.data.buffer.slice(a.data.byteOffset, a.data.byteOffset + a.data.byteLength));
  if (a.descr === '<f4')
    return Float64Array.from(
      new Float32Array(a.data.buffer.slice(a.data.byteOffset, a.data.byteOffset + a.data.byteLength)),
    );
  throw new Error(`${name}: dtype ${a.descr}, float64 or float32 expected`);
}

/** Reads pytorch-fid style statistics (mu [D], sigma [D, D]); `n` and muse's metadata when present. */
export async function loadStatsNpz(file: string): Promise<{ stats: FeatureStats; meta: Record<string, unknown> }> {
  const entries = unzip(await fsp.readFile(file), file);
  const get = (n: string) => {
    const b = entries.get(`${n}.npy`);
    if (!b) throw new Error(`${file}: no '${n}' array (pytorch-fid statistics have mu and sigma)`);
    return parseNpy(b, `${file}:${n}`);
  };
  const mu = get('mu');
  const sigma = get('sigma');
  const dim = mu.shape[0];
  if (mu.shape.length !== 1 || sigma.shape.length !== 2 || sigma.shape[0] !== dim || sigma.shape[1] !== dim) {
    throw new Error(`${file}: mu [${mu.shape}] and sigma [${sigma.shape}] do not fit together`);
  }
  let n = 0;
  if (entries.has('n.npy')) n = Number(parseNpy(entries.get('n.npy')!, 'n').data.readBigInt64LE(0));
  let meta: Record<string, unknown> = {};
  if (entries.has('muse_meta.npy'))
    meta = JSON.parse(parseNpy(entries.get('muse_meta.npy')!, 'meta').data.toString('utf8')) as Record<string, unknown>;
  return { stats: { n, dim, mu: toFloat64(mu, `${file}:mu`), sigma: toFloat64(sigma, `${file}:sigma`) }, meta };
}
