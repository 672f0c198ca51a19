/**
 * `<dataset>/dedup.arrow`: the duplicates still present in the shards (decided, not yet removed by `--apply`),
 * for a training loader that reads without SQLite (pyarrow `pa.ipc.open_file` reads it too). One row per
 * duplicate in key order: key, duplicate_of, duplicate_of_dataset (its dataset's name), kind, distance (null for
 * URL duplicates). The run settings are in the schema metadata under `muse.dedup`.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Int32, Schema, Table, Utf8, tableFromIPC, tableToIPC, vectorFromArray } from 'apache-arrow';
import { writeFileAtomic } from '../util/atomic.ts';

export const DEDUP_FILE = 'dedup.arrow';

export interface DuplicateRow {
  key: string;
  duplicate_of: string;
  duplicate_of_dataset: string;
  kind: string;
  distance: number | null;
}

export function dedupFilePath(datasetDir: string): string {
  return path.join(datasetDir, DEDUP_FILE);
}

/** Writes the file when its content changes; returns whether it did. */
export async function writeDuplicatesFile(
  datasetDir: string,
  rows: DuplicateRow[],
  settings: string,
): Promise<boolean> {
  const str = (k: keyof DuplicateRow) =>
    vectorFromArray(
      rows.map((r) => r[k] as string),
      new Utf8(),
    );
  const table = new Table({
    key: str('key'),
    duplicate_of: str('duplicate_of'),
    duplicate_of_dataset: str('duplicate_of_dataset'),
    kind: str('kind'),
    distance: vectorFromArray(
      rows.map((r) => r.distance),
      new Int32(),
    ),
  });
  const withMeta = new Table(new Schema(table.schema.fields, new Map([['muse.dedup', settings]])), table.batches);
  const bytes = tableToIPC(withMeta, 'file');
  const file = dedupFilePath(datasetDir);
  if (existsSync(file) && Buffer.from(bytes).equals(await readFile(file))) return false;
  await writeFileAtomic(file, bytes);
  return true;
}

export async function readDuplicatesFile(datasetDir: string): Promise<DuplicateRow[]> {
  const file = dedupFilePath(datasetDir);
  if (!existsSync(file)) return [];
  return [...tableFromIPC(await readFile(file))].map((r) => r.toJSON() as unknown as DuplicateRow);
}

/** Keys a loader should skip (empty when the dataset was never deduplicated or all duplicates were applied). */
export async function loadDuplicateKeys(datasetDir: string): Promise<Set<string>> {
  const file = dedupFilePath(datasetDir);
  if (!existsSync(file)) return new Set();
  const keys = tableFromIPC(await readFile(file)).getChild('key');
  const out = new Set<string>();
  if (keys) for (let i = 0; i < keys.length; i++) out.add(keys.get(i) as string);
  return out;
}
