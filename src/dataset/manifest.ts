/**
 * The shard manifest `{i:05d}.arrow`: an Arrow IPC file with one row per INPUT row of the shard, whatever its
 * status, in key order. Readable by pyarrow (`pa.ipc.open_file`) and apache-arrow (`tableFromIPC`).
 * No timings in it: the manifest of a rerun is byte-identical.
 */
import { readFile } from 'node:fs/promises';
import { Int32, Int64, Table, Utf8, tableFromIPC, tableToIPC, vectorFromArray } from 'apache-arrow';
import { writeFileAtomic } from '../util/atomic.ts';
import { toJsonSafe } from '../shards/sample-json.ts';
import type { SampleOutcome, SampleStatus } from '../shards/outcome.ts';

export interface ManifestRow {
  key: string;
  row: number;
  url: string;
  caption: string | null;
  status: SampleStatus;
  reason: string | null;
  error: string | null;
  width: number | null;
  height: number | null;
  original_width: number | null;
  original_height: number | null;
  bytes: number | null;
  sha256: string | null;
  phash: string | null;
  cls: number | null;
  /** Source columns as a JSON string. */
  meta: string | null;
}

export function manifestRow(o: SampleOutcome): ManifestRow {
  return {
    key: o.key,
    row: o.row,
    url: o.url,
    caption: o.caption,
    status: o.status,
    reason: o.reason,
    error: o.error,
    width: o.image?.width ?? null,
    height: o.image?.height ?? null,
    original_width: o.originalWidth ?? null,
    original_height: o.originalHeight ?? null,
    bytes: o.bytes ?? null,
    sha256: o.sha256 ?? null,
    phash: o.phash ?? null,
    cls: o.cls ?? null,
    meta: Object.keys(o.meta).length ? JSON.stringify(toJsonSafe(o.meta)) : null,
  };
}

export function manifestTable(rows: ManifestRow[]): Table {
  const str = (k: keyof ManifestRow) =>
    vectorFromArray(
      rows.map((r) => r[k] as string | null),
      new Utf8(),
    );
  const i32 = (k: keyof ManifestRow) =>
    vectorFromArray(
      rows.map((r) => r[k] as number | null),
      new Int32(),
    );
  return new Table({
    key: str('key'),
    row: vectorFromArray(
      rows.map((r) => BigInt(r.row)),
      new Int64(),
    ),
    url: str('url'),
    caption: str('caption'),
    status: str('status'),
    reason: str('reason'),
    error: str('error'),
    width: i32('width'),
    height: i32('height'),
    original_width: i32('original_width'),
    original_height: i32('original_height'),
    bytes: i32('bytes'),
    sha256: str('sha256'),
    phash: str('phash'),
    cls: i32('cls'),
    meta: str('meta'),
  });
}

export async function writeManifest(file: string, rows: ManifestRow[]): Promise<void> {
  await writeFileAtomic(file, tableToIPC(manifestTable(rows), 'file'));
}

export async function readManifest(file: string): Promise<ManifestRow[]> {
  const bytes = await readFile(file);
  const rows: ManifestRow[] = [];
  try {
    for (const r of tableFromIPC(bytes)) {
      const o = r.toJSON() as Record<string, unknown>;
      rows.push({ ...(o as unknown as ManifestRow), row: Number(o.row as bigint) });
    }
  } catch (err) {
    // apache-arrow's own message names no file
    throw new Error(
      `${file}: not a readable shard manifest (${(err as Error).message.split('\n')[0]}); refetch the shard (delete its _stats.json and rerun fetch)`,
    );
  }
  if (bytes.length === 0)
    throw new Error(
      `${file}: empty shard manifest (${bytes.length} bytes); refetch the shard (delete its _stats.json and rerun fetch)`,
    );
  return rows;
}
