/**
 * Point look-ups in sample index runs (src/index-db/sample-runs.ts) without a query engine: each run's Parquet
 * footer is read once (hyparquet), giving every row group's min/max of the key column (url_hash or sha_hi);
 * a look-up reads only the row groups whose range can hold the key, decodes just the key column of each,
 * binary-searches it (or scans it, in a file not sorted by that column, such as a shard run looked up by
 * image hash), and decodes the other columns of a group only when it holds a match. Footers and decoded
 * columns stay in a bounded least-recently-used cache shared by the process, keyed by the file's identity
 * (inode, size, mtime) so a run replaced on disk is never answered from the old one's cache.
 *
 * DuckDB stays the engine of the batch joins and compaction; a DuckDB query costs milliseconds per look-up,
 * this costs a binary search once the row group is cached.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { parquetMetadataAsync, parquetRead, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

export type KeyColumn = 'url_hash' | 'sha_hi';

/** A run file as a look-up sees it: its path, and the identity it had when the index was opened. */
export interface RunRef {
  file: string;
  /** `${ino}:${size}:${mtimeMs}`: cached data is only used for the file with this identity. */
  version: string;
  /** For runs without a dataset_id column (shard runs): the dataset they belong to. */
  datasetId?: number;
}

/** The columns a look-up returns, decoded for one row group. */
export interface GroupRows {
  datasetId: ArrayLike<number> | null;
  key: ArrayLike<string>;
  shard: ArrayLike<number>;
  status: ArrayLike<string>;
  sha256: ArrayLike<Uint8Array | null>;
  phash: ArrayLike<bigint | null>;
}

export interface RunRow {
  datasetId: number;
  key: string;
  shard: number;
  status: string;
  sha256: Buffer | null;
  phash: bigint | null;
}

/** The run changed on disk since the index was opened (rewritten or deleted by a compaction): reopen and retry. */
export class RunChangedError extends Error {}

interface Group {
  start: number;
  end: number;
  /** Min/max of each key column (unsigned); null when the footer has no statistics for it; 'none' when all null. */
  range: Record<KeyColumn, [bigint, bigint] | 'none' | null>;
}

interface Footer {
  metadata: FileMetaData;
  groups: Group[];
  hasDatasetId: boolean;
}

/** A least-recently-used map bounded by the summed weight of its values (Map keeps insertion order). */
class WeightedLru<V> {
  private readonly map = new Map<string, { v: V; w: number }>();
  private total = 0;
  constructor(private readonly maxWeight: number) {}

  get(k: string): V | undefined {
    const e = this.map.get(k);
    if (!e) return undefined;
    this.map.delete(k);
    this.map.set(k, e);
    return e.v;
  }

  set(k: string, v: V, w: number): void {
    const old = this.map.get(k);
    if (old) {
      this.total -= old.w;
      this.map.delete(k);
    }
    this.map.set(k, { v, w });
    this.total += w;
    for (const [key, e] of this.map) {
      if (this.total <= this.maxWeight || key === k) break;
      this.map.delete(key);
      this.total -= e.w;
    }
  }

  delete(k: string): void {
    const e = this.map.get(k);
    if (e) {
      this.map.delete(k);
      this.total -= e.w;
    }
  }
}

/** Cache bounds: footers by count, decoded columns by rows (a key column costs 8 bytes a row). */
export interface RunLookupLimits {
  footers: number;
  keyRows: number;
  rowsRows: number;
}

const DEFAULT_LIMITS: RunLookupLimits = { footers: 4096, keyRows: 8_000_000, rowsRows: 500_000 };

export async function runRef(file: string, datasetId?: number): Promise<RunRef> {
  const s = await stat(file);
  return { file, version: `${s.ino}:${s.size}:${s.mtimeMs}`, ...(datasetId === undefined ? {} : { datasetId }) };
}

const u64 = (v: bigint | number) => BigInt.asUintN(64, BigInt(v));

export class RunLookup {
  private readonly footers: WeightedLru<Promise<Footer>>;
  private readonly keys: WeightedLru<Promise<BigUint64Array & { sorted?: boolean }>>;
  private readonly rows: WeightedLru<Promise<GroupRows>>;
  /** Row groups decoded from disk so far (tests and the benchmark use it to tell cold from warm). */
  groupReads = 0;

  constructor(limits: Partial<RunLookupLimits> = {}) {
    const l = { ...DEFAULT_LIMITS, ...limits };
    this.footers = new WeightedLru(l.footers);
    this.keys = new WeightedLru(l.keyRows);
    this.rows = new WeightedLru(l.rowsRows);
  }

  /**
   * Rows of `runs` whose `column` equals `key`, in file order; `wanted` drops rows before they are returned
   * (e.g. stale shards, or a sha256 that only shares its first 8 bytes).
   */
  async find(
    runs: readonly RunRef[],
    column: KeyColumn,
    key: bigint,
    wanted: (r: RunRow, ref: RunRef) => boolean = () => true,
  ): Promise<RunRow[]> {
    const k = u64(key);
    const perFile = await Promise.all(runs.map((ref) => this.findIn(ref, column, k, wanted)));
    return perFile.flat();
  }

  private async findIn(
    ref: RunRef,
    column: KeyColumn,
    key: bigint,
    wanted: (r: RunRow, ref: RunRef) => boolean,
  ): Promise<RunRow[]> {
    const footer = await this.footer(ref);
    const out: RunRow[] = [];
    for (let g = 0; g < footer.groups.length; g++) {
      const range = footer.groups[g].range[column];
      if (range === 'none' || (range && (key < range[0] || key > range[1]))) continue;
      const keys = await this.keyColumn(ref, footer, g, column);
      const hits: number[] = [];
      if (keys.sorted) {
        for (let i = lowerBound(keys, key); i < keys.length && keys[i] === key; i++) hits.push(i);
      } else {
        for (let i = 0; i < keys.length; i++) if (keys[i] === key) hits.push(i);
      }
      if (!hits.length) continue;
      const rows = await this.groupRows(ref, footer, g);
      for (const i of hits) {
        const sha = rows.sha256[i];
        const phash = rows.phash[i];
        const r: RunRow = {
          datasetId: rows.datasetId ? Number(rows.datasetId[i]) : (ref.datasetId ?? 0),
          key: String(rows.key[i]),
          shard: Number(rows.shard[i]),
          status: String(rows.status[i]),
          sha256: sha ? Buffer.from(sha) : null,
          phash: phash == null ? null : u64(phash),
        };
        if (wanted(r, ref)) out.push(r);
      }
    }
    return out;
  }

  private cacheKey(ref: RunRef, what: string): string {
    return `${ref.file}\0${ref.version}\0${what}`;
  }

  private footer(ref: RunRef): Promise<Footer> {
    const k = this.cacheKey(ref, 'footer');
    let f = this.footers.get(k);
    if (!f) {
      f = this.withFile(ref, async (file) => readFooter(ref.file, await parquetMetadataAsync(file)));
      f.catch(() => this.footers.delete(k));
      this.footers.set(k, f, 1);
    }
    return f;
  }

  private keyColumn(
    ref: RunRef,
    footer: Footer,
    g: number,
    column: KeyColumn,
  ): Promise<BigUint64Array & { sorted?: boolean }> {
    const k = this.cacheKey(ref, `${g}\0${column}`);
    let p = this.keys.get(k);
    if (!p) {
      p = this.read(ref, footer, g, [column]).then((cols) => {
        const src = cols[column] as ArrayLike<bigint | null>;
        const keys = new BigUint64Array(src.length) as BigUint64Array & { sorted?: boolean };
        let sorted = true;
        for (let i = 0; i < src.length; i++) {
          // Nulls (no image) sort last in the by-image run; a key is never 2^64-1 in practice, and a null
          // matches nothing because the caller's `wanted` checks the full sha256.
          keys[i] = src[i] == null ? 0xffff_ffff_ffff_ffffn : u64(src[i]!);
          if (i && keys[i] < keys[i - 1]) sorted = false;
        }
        keys.sorted = sorted;
        return keys;
      });
      p.catch(() => this.keys.delete(k));
      this.keys.set(k, p, footer.groups[g].end - footer.groups[g].start);
    }
    return p;
  }

  private groupRows(ref: RunRef, footer: Footer, g: number): Promise<GroupRows> {
    const k = this.cacheKey(ref, `${g}\0rows`);
    let p = this.rows.get(k);
    if (!p) {
      const cols = ['key', 'shard', 'status', 'sha256', 'phash', ...(footer.hasDatasetId ? ['dataset_id'] : [])];
      p = this.read(ref, footer, g, cols).then((c) => ({
        datasetId: footer.hasDatasetId ? (c.dataset_id as ArrayLike<number>) : null,
        key: c.key as ArrayLike<string>,
        shard: c.shard as ArrayLike<number>,
        status: c.status as ArrayLike<string>,
        sha256: c.sha256 as ArrayLike<Uint8Array | null>,
        phash: c.phash as ArrayLike<bigint | null>,
      }));
      p.catch(() => this.rows.delete(k));
      this.rows.set(k, p, footer.groups[g].end - footer.groups[g].start);
    }
    return p;
  }

  /** Decodes `columns` of row group `g`. Byte arrays stay bytes; key and status are decoded as text here. */
  private read(ref: RunRef, footer: Footer, g: number, columns: string[]): Promise<Record<string, ArrayLike<unknown>>> {
    this.groupReads++;
    const { start, end } = footer.groups[g];
    return this.withFile(ref, async (file) => {
      const out: Record<string, ArrayLike<unknown>> = {};
      await parquetRead({
        file,
        metadata: footer.metadata,
        compressors,
        columns,
        rowStart: start,
        rowEnd: end,
        utf8: false,
        onChunk: (c) => {
          // One chunk per column per row group here (rowStart..rowEnd is exactly one group).
          out[c.columnName] =
            c.rowStart === start && c.rowEnd === end
              ? c.columnData
              : Array.prototype.slice.call(c.columnData, start - c.rowStart, end - c.rowStart);
        },
      });
      const text = new TextDecoder();
      for (const name of ['key', 'status']) {
        const col = out[name] as ArrayLike<Uint8Array | string> | undefined;
        if (col) out[name] = Array.from(col, (v) => (typeof v === 'string' ? v : text.decode(v)));
      }
      for (const name of columns)
        if (!out[name] || out[name].length !== end - start)
          throw new Error(`${ref.file}: row group ${g} gave no complete column ${name}`);
      return out;
    });
  }

  /** Runs `fn` over the file opened now, after checking it is still the version the index was opened with. */
  private async withFile<T>(ref: RunRef, fn: (file: AsyncBuffer) => Promise<T>): Promise<T> {
    let fh: FileHandle;
    try {
      fh = await open(ref.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new RunChangedError(`${ref.file}: index run deleted since the index was opened`);
      throw err;
    }
    try {
      const s = await fh.stat();
      if (`${s.ino}:${s.size}:${s.mtimeMs}` !== ref.version)
        throw new RunChangedError(`${ref.file}: index run replaced since the index was opened`);
      return await fn(handleBuffer(fh, s.size, ref.file));
    } finally {
      await fh.close();
    }
  }
}

function readFooter(file: string, metadata: FileMetaData): Footer {
  const names = new Set(metadata.schema.slice(1).map((s) => s.name));
  for (const c of ['url_hash', 'sha_hi', 'key', 'shard', 'status', 'sha256', 'phash']) {
    if (!names.has(c)) throw new Error(`${file}: not a sample index run (no column ${c})`);
  }
  const groups: Group[] = [];
  let start = 0;
  for (const rg of metadata.row_groups) {
    const end = start + Number(rg.num_rows);
    const range = { url_hash: null, sha_hi: null } as Group['range'];
    for (const c of rg.columns) {
      const name = c.meta_data?.path_in_schema[0];
      const st = c.meta_data?.statistics;
      if (
        (name === 'url_hash' || name === 'sha_hi') &&
        st?.null_count !== undefined &&
        BigInt(st.null_count) === BigInt(rg.num_rows)
      ) {
        range[name] = 'none'; // samples without an image, sorted last in the by-image run
      } else if (
        (name === 'url_hash' || name === 'sha_hi') &&
        typeof st?.min_value === 'bigint' &&
        typeof st.max_value === 'bigint'
      ) {
        const lo = u64(st.min_value);
        const hi = u64(st.max_value);
        // A writer that kept signed statistics for unsigned values could give lo > hi: then no pruning.
        range[name] = lo <= hi ? [lo, hi] : null;
      }
    }
    groups.push({ start, end, range });
    start = end;
  }
  return { metadata, groups, hasDatasetId: names.has('dataset_id') };
}

function lowerBound(a: BigUint64Array, key: bigint): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function handleBuffer(fh: FileHandle, size: number, file: string): AsyncBuffer {
  return {
    byteLength: size,
    slice: async (start: number, end = size): Promise<ArrayBuffer> => {
      const bytes = new Uint8Array(Math.max(0, end - start));
      let done = 0;
      while (done < bytes.length) {
        const { bytesRead } = await fh.read(bytes, done, bytes.length - done, start + done);
        if (bytesRead === 0) throw new Error(`${file}: unexpected end of file at byte ${start + done}`);
        done += bytesRead;
      }
      return bytes.buffer;
    },
  };
}
