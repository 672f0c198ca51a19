/**
 * `<dataset>/dataset.json`: written by the first fetch into a folder, it records what made the dataset (the
 * pipeline configuration, its input's row and shard count). A later fetch with a pipeline that would shape the
 * shards differently is refused (src/pipeline/run-fetch.ts); dedup and the index name the dataset by `name`.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';

export const DATASET_FILE = 'dataset.json';

/** `P`: the pipeline configuration's type (src/pipeline/config-types.ts), kept generic to keep imports pointing down. */
export interface DatasetJson<P = Record<string, unknown>> {
  name: string;
  total_rows: number;
  shards: number;
  /** ISO time of the first fetch. */
  created: string;
  pipeline: P;
}

export function datasetJsonPath(datasetDir: string): string {
  return path.join(datasetDir, DATASET_FILE);
}

/** The folder's dataset.json, or null when it has none; a damaged one is an error naming the file. */
export function readDatasetJson<P = Record<string, unknown>>(datasetDir: string): DatasetJson<P> | null {
  const file = datasetJsonPath(datasetDir);
  if (!existsSync(file)) return null;
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not readable JSON (${(err as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j))
    throw new Error(`${file}: expected an object with name, total_rows, shards, created, pipeline`);
  const o = j as Record<string, unknown>;
  if (typeof o.pipeline !== 'object' || o.pipeline === null)
    throw new Error(`${file}: "pipeline" must be the pipeline configuration object, got ${JSON.stringify(o.pipeline)}`);
  return o as unknown as DatasetJson<P>;
}

export async function writeDatasetJson<P>(datasetDir: string, j: DatasetJson<P>): Promise<void> {
  const { name, total_rows, shards, created, pipeline } = j; // fixed key order
  await writeFileAtomic(
    datasetJsonPath(datasetDir),
    JSON.stringify({ name, total_rows, shards, created, pipeline }, null, 2) + '\n',
  );
}

/** The dataset's name: dataset.json's `name`, else the folder's name. */
export function datasetName(datasetDir: string): string {
  const name = readDatasetJson(datasetDir)?.name;
  return typeof name === 'string' && name ? name : path.basename(datasetDir);
}
