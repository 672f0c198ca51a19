/**
 * Sample index runs: Parquet files of index entries sorted by URL hash, written and read with DuckDB
 * (@duckdb/node-api). Whoever makes a shard writes its run beside it, so recording has no global writer; a
 * compaction merges runs into large sorted runs whose row groups each cover a narrow hash range, so a point
 * look-up reads only the row groups whose min/max can hold the answer. This module knows the file format and the
 * queries, not where runs live (that is `src/dataset/sample-index.ts`).
 *
 * Columns: url_hash UBIGINT (first 8 bytes of sha256(normalised URL), big-endian), sha256 BLOB (32 bytes of the
 * image's sha256), sha_hi UBIGINT (its first 8 bytes: the sort key of the by-image copy), phash UBIGINT (dHash),
 * caption_hash UBIGINT, key, shard, status; compacted runs add dataset_id.
 */
import { rename, rm, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { captionHash, sampleUrlHash, sha256Bytes, phashToInt, type SampleInput } from './db.ts';
import { parquetWriteBuffer } from 'hyparquet-writer';
import type { SchemaElement } from 'hyparquet';
import { fsyncDir, TMP_SUFFIX, writeFileAtomic } from '../util/atomic.ts';

/** Rows per row group in compacted runs: one group is what a cold point look-up reads (per column). */
export const COMPACT_ROW_GROUP = 4_096;

export const RUN_COLUMNS = `url_hash UBIGINT NOT NULL, sha256 BLOB, sha_hi UBIGINT, phash UBIGINT, caption_hash UBIGINT,
  key VARCHAR NOT NULL, shard INTEGER NOT NULL, status VARCHAR NOT NULL`;

export class RunError extends Error {}

let shared: Promise<DuckDBInstance> | undefined;

/**
 * One in-memory DuckDB per process (it only reads and writes Parquet files), loaded on first use so that a
 * process that never touches the index (the fetch parent, other commands) does not load the native library.
 */
export function duck(): Promise<DuckDBInstance> {
  shared ??= (async () => {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    // Keeps Parquet footers (row-group min/max) in memory between look-ups; the parquet extension is built in.
    await con.run('LOAD parquet; SET parquet_metadata_cache = true');
    con.closeSync();
    return db;
  })();
  return shared;
}

export async function connect(): Promise<DuckDBConnection> {
  return (await duck()).connect();
}

/** SQL string literal (paths come from our own layout, still quoted properly). */
export function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

export function sqlList(files: readonly string[]): string {
  return `[${files.map(sqlString).join(', ')}]`;
}

const u64 = (b: Buffer) => b.readBigUInt64BE(0);

let tableSeq = 0;

/** The run's Parquet schema as DuckDB writes it (UBIGINT = INT64 UINT_64, BLOB, VARCHAR = UTF8), so both mix. */
const RUN_SCHEMA: SchemaElement[] = [
  { name: 'duckdb_schema', num_children: 8 },
  { name: 'url_hash', type: 'INT64', converted_type: 'UINT_64', repetition_type: 'REQUIRED' },
  { name: 'sha256', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
  { name: 'sha_hi', type: 'INT64', converted_type: 'UINT_64', repetition_type: 'OPTIONAL' },
  { name: 'phash', type: 'INT64', converted_type: 'UINT_64', repetition_type: 'OPTIONAL' },
  { name: 'caption_hash', type: 'INT64', converted_type: 'UINT_64', repetition_type: 'OPTIONAL' },
  { name: 'key', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
  { name: 'shard', type: 'INT32', repetition_type: 'REQUIRED' },
  { name: 'status', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
];

/**
 * Writes `rows` as a run at `file`, sorted by (url_hash, key), with hyparquet-writer (no database to start: a
 * shard's run is one small file): to `<file>.tmp`, fsynced, renamed, directory fsynced, so a reader or a rerun
 * after kill -9 sees the whole file or none. Hashes do not compress: only the text columns are compressed.
 */
export async function writeRun(
  file: string,
  rows: readonly Omit<SampleInput, 'shard'>[],
  shard: number,
  knownUrlHash?: KnownUrlHash,
): Promise<void> {
  await writeFileAtomic(file, encodeRun(rows, shard, knownUrlHash));
}

/** A row's url_hash when the caller computed it already (`sampleUrlHash` of its url), else undefined. */
export type KnownUrlHash = (row: Omit<SampleInput, 'shard'>) => Buffer | undefined;

/** A run's Parquet bytes: the rows with a URL, hashed and sorted by (url_hash, key). */
export function encodeRun(
  rows: readonly Omit<SampleInput, 'shard'>[],
  shard: number,
  knownUrlHash?: KnownUrlHash,
): Uint8Array {
  const recs: Array<{ uh: bigint; r: Omit<SampleInput, 'shard'> }> = [];
  for (const r of rows) if (r.url) recs.push({ uh: u64(knownUrlHash?.(r) ?? sampleUrlHash(r.url)), r });
  recs.sort((a, b) => (a.uh < b.uh ? -1 : a.uh > b.uh ? 1 : a.r.key < b.r.key ? -1 : a.r.key > b.r.key ? 1 : 0));
  const n = recs.length;
  const urlHash = new Array<bigint>(n);
  const sha = new Array<Uint8Array | null>(n);
  const shaHi = new Array<bigint | null>(n);
  const phash = new Array<bigint | null>(n);
  const caption = new Array<bigint | null>(n);
  const key = new Array<string>(n);
  const status = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const { uh, r } = recs[i];
    urlHash[i] = uh;
    const b = r.sha256 ? sha256Bytes(r.sha256) : null;
    sha[i] = b;
    shaHi[i] = b ? u64(b) : null;
    phash[i] = r.phash ? BigInt.asUintN(64, phashToInt(r.phash)) : null;
    caption[i] = r.caption != null ? u64(captionHash(r.caption)) : null;
    key[i] = r.key;
    status[i] = r.status;
  }
  // Hashes are random: no compression, no dictionary attempt; min/max only where look-ups prune on them.
  const raw = { codec: 'UNCOMPRESSED' as const, encoding: 'PLAIN' as const, statistics: false };
  const bytes = parquetWriteBuffer({
    schema: RUN_SCHEMA,
    codec: 'SNAPPY',
    columnData: [
      { name: 'url_hash', data: urlHash, ...raw, statistics: true },
      { name: 'sha256', data: sha, ...raw },
      { name: 'sha_hi', data: shaHi, ...raw, statistics: true },
      { name: 'phash', data: phash, ...raw },
      { name: 'caption_hash', data: caption, ...raw },
      { name: 'key', data: key },
      { name: 'shard', data: new Int32Array(n).fill(shard) },
      { name: 'status', data: status },
    ],
  });
  return new Uint8Array(bytes);
}

/** `COPY (query) TO file` through `<file>.tmp` + fsync + rename + directory fsync. */
export async function copyAtomic(con: DuckDBConnection, query: string, file: string, rowGroup?: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = file + TMP_SUFFIX;
  await rm(tmp, { force: true });
  await con.run(
    `COPY (${query}) TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION zstd${rowGroup ? `, ROW_GROUP_SIZE ${rowGroup}` : ''})`,
  );
  const fh = await open(tmp, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** A set of runs to query: per-dataset runs (no dataset column) and compacted ones (with dataset_id). */
export interface RunSet {
  /** Per dataset: its shard runs still live (not absorbed by a compaction). */
  shardRuns: Array<{ datasetId: number; files: string[] }>;
  /** Compacted runs sorted by url_hash, and the same rows sorted by sha_hi. */
  compacted: Array<{ byUrl: string; bySha: string }>;
  /** (datasetId, shard) whose rows in the compacted runs are stale (a newer shard run exists). */
  stale: Array<{ datasetId: number; shard: number }>;
}

/**
 * The SQL of all live index rows (dataset_id + the run columns) as one relation. `order` picks which copy of
 * the compacted runs is read: the one sorted by the column the query filters on, so row groups get pruned.
 */
export function runsRelation(set: RunSet, order: 'url' | 'sha'): string | null {
  const parts: string[] = [];
  const cols = 'url_hash, sha256, sha_hi, phash, caption_hash, key, shard, status';
  for (const d of set.shardRuns) {
    if (d.files.length)
      parts.push(`SELECT ${d.datasetId}::INTEGER AS dataset_id, ${cols} FROM read_parquet(${sqlList(d.files)})`);
  }
  if (set.compacted.length) {
    const files = set.compacted.map((c) => (order === 'url' ? c.byUrl : c.bySha));
    const stale = set.stale.length
      ? ` WHERE (dataset_id, shard) NOT IN (${set.stale.map((s) => `(${s.datasetId}, ${s.shard})`).join(', ')})`
      : '';
    parts.push(`SELECT dataset_id, ${cols} FROM read_parquet(${sqlList(files)})${stale}`);
  }
  return parts.length ? parts.map((p) => `(${p})`).join(' UNION ALL ') : null;
}

/** One index row as the look-ups return it. */
export interface RunHit {
  datasetId: number;
  key: string;
  shard: number;
  status: string;
  sha256: string | null;
  phash: string | null;
}

function hits(rows: Record<string, unknown>[]): RunHit[] {
  return rows.map((r) => ({
    datasetId: Number(r.dataset_id),
    key: String(r.key),
    shard: Number(r.shard),
    status: String(r.status),
    sha256: r.sha256 ? Buffer.from(r.sha256 as Uint8Array).toString('hex') : null,
    phash: r.phash == null ? null : (r.phash as bigint).toString(16).padStart(16, '0'),
  }));
}

const HIT_COLS = 'dataset_id, key, shard, status, sha256, phash';

async function select(con: DuckDBConnection, sql: string): Promise<RunHit[]> {
  const reader = await con.runAndReadAll(sql);
  return hits(reader.getRowObjectsJS() as Record<string, unknown>[]);
}

export async function runsByUrlHash(con: DuckDBConnection, set: RunSet, hash: Buffer): Promise<RunHit[]> {
  const rel = runsRelation(set, 'url');
  if (!rel) return [];
  return select(
    con,
    `SELECT ${HIT_COLS} FROM (${rel}) WHERE url_hash = ${u64(hash)}::UBIGINT ORDER BY dataset_id, key`,
  );
}

export async function runsBySha256(con: DuckDBConnection, set: RunSet, sha256: Buffer): Promise<RunHit[]> {
  const rel = runsRelation(set, 'sha');
  if (!rel) return [];
  const hex = sha256.toString('hex');
  return select(
    con,
    `SELECT ${HIT_COLS} FROM (${rel}) WHERE sha_hi = ${u64(sha256)}::UBIGINT AND sha256 = from_hex('${hex}') ORDER BY dataset_id, key`,
  );
}

/** Rows of one dataset whose phash is within `maxDistance` bits of `phash` (a scan of the phash column). */
export async function runsNearPhash(
  con: DuckDBConnection,
  set: RunSet,
  datasetId: number,
  phash: bigint,
  maxDistance: number,
): Promise<Array<RunHit & { distance: number }>> {
  const rel = runsRelation(set, 'url');
  if (!rel) return [];
  const reader = await con.runAndReadAll(
    `SELECT ${HIT_COLS}, bit_count(xor(phash, ${BigInt.asUintN(64, phash)}::UBIGINT))::INTEGER AS distance FROM (${rel})
     WHERE dataset_id = ${datasetId} AND phash IS NOT NULL AND bit_count(xor(phash, ${BigInt.asUintN(64, phash)}::UBIGINT)) <= ${maxDistance}
     ORDER BY distance, key`,
  );
  const rows = reader.getRowObjectsJS() as Record<string, unknown>[];
  return hits(rows).map((h, i) => ({ ...h, distance: Number(rows[i].distance) }));
}

/**
 * Opt-out planning as one batch join: samples of `datasetId` still in their tar (status ok / fallback) whose
 * url_hash or sha256 is in the given lists (each read once, when needed). DuckDB runs the hash joins on all
 * its threads.
 */
export async function runsOptedOut(
  con: DuckDBConnection,
  set: RunSet,
  datasetId: number | null,
  urlHashes: () => Iterable<Buffer>,
  sha256s: () => Iterable<Buffer>,
): Promise<Array<{ datasetId: number; key: string; shard: number; byImage: boolean }>> {
  const rel = runsRelation(set, 'url');
  if (!rel) return [];
  const t = `oo_${process.pid}_${tableSeq++}`;
  try {
    await con.run(`CREATE TEMP TABLE ${t}_u (h UBIGINT); CREATE TEMP TABLE ${t}_i (s BLOB)`);
    const au = await con.createAppender(`${t}_u`, 'main', 'temp');
    for (const h of urlHashes()) {
      au.appendUBigInt(u64(h));
      au.endRow();
    }
    au.closeSync();
    const ai = await con.createAppender(`${t}_i`, 'main', 'temp');
    for (const s of sha256s()) {
      ai.appendBlob(s);
      ai.endRow();
    }
    ai.closeSync();
    const where = `s.status IN ('ok', 'fallback')${datasetId === null ? '' : ` AND s.dataset_id = ${datasetId}`}`;
    const reader = await con.runAndReadAll(
      `WITH s AS (${rel})
       SELECT s.dataset_id, s.key, s.shard, 0 AS by_image FROM s SEMI JOIN temp.${t}_u o ON s.url_hash = o.h WHERE ${where}
       UNION ALL
       SELECT s.dataset_id, s.key, s.shard, 1 FROM s SEMI JOIN temp.${t}_i o ON s.sha256 = o.s WHERE ${where}
       ORDER BY 4, 1, 2`,
    );
    return (reader.getRowObjectsJS() as Record<string, unknown>[]).map((r) => ({
      datasetId: Number(r.dataset_id),
      key: String(r.key),
      shard: Number(r.shard),
      byImage: Number(r.by_image) === 1,
    }));
  } finally {
    await con.run(`DROP TABLE IF EXISTS temp.${t}_u; DROP TABLE IF EXISTS temp.${t}_i`).catch(() => {});
  }
}

/**
 * Merges `inputs` (shard runs of datasets, and older compacted runs) into one compacted run: `byUrl` sorted by
 * (url_hash, dataset_id, key) and `bySha` sorted by (sha_hi, dataset_id, key), both in small row groups.
 * Each file is written atomically; the caller swaps its manifest of live runs after both exist.
 */
export async function writeCompacted(
  con: DuckDBConnection,
  set: RunSet,
  byUrl: string,
  bySha: string,
): Promise<number> {
  const rel = runsRelation(set, 'url');
  if (!rel) throw new RunError('nothing to compact');
  const t = `cmp_${process.pid}_${tableSeq++}`;
  try {
    await con.run(`CREATE TEMP TABLE ${t} AS ${rel}`);
    const n = Number((await con.runAndReadAll(`SELECT count(*) AS n FROM temp.${t}`)).getRowObjectsJS()[0].n);
    await copyAtomic(con, `SELECT * FROM temp.${t} ORDER BY url_hash, dataset_id, key`, byUrl, COMPACT_ROW_GROUP);
    await copyAtomic(
      con,
      `SELECT * FROM temp.${t} ORDER BY sha_hi NULLS LAST, dataset_id, key`,
      bySha,
      COMPACT_ROW_GROUP,
    );
    return n;
  } finally {
    await con.run(`DROP TABLE IF EXISTS temp.${t}`).catch(() => {});
  }
}
