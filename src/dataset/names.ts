/** File names of a dataset folder: `<dataset>/shards/{i:05d}.tar|.arrow|.index.parquet|_stats.json`, `<dataset>/queue/`. */
import path from 'node:path';

export const SHARD_DIGITS = 5;

export function shardName(index: number): string {
  return String(index).padStart(SHARD_DIGITS, '0');
}

/** `<dataset>/shards/`: a folder is a dataset iff it has one. */
export function shardsDir(datasetDir: string): string {
  return path.join(datasetDir, 'shards');
}

/** The shard's sample index run (sorted Parquet, src/index-db/sample-runs.ts), written before its stats. */
export const INDEX_RUN_SUFFIX = '.index.parquet';

/** `<data root>/index/`: compacted sample index runs and `runs.json`, the manifest of the live ones. */
export function indexRunsDir(dataRoot: string): string {
  return path.join(dataRoot, 'index');
}

export function shardPaths(datasetDir: string, index: number) {
  const base = path.join(shardsDir(datasetDir), shardName(index));
  return {
    tar: `${base}.tar`,
    manifest: `${base}.arrow`,
    indexRun: `${base}${INDEX_RUN_SUFFIX}`,
    stats: `${base}_stats.json`,
  };
}

/** The shard whose stats file is named `name` (`00012_stats.json` -> 12), or null for any other file. */
export function shardOfStatsFile(name: string): number | null {
  const m = /^(\d+)_stats\.json$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Digits of the in-shard position in a key: 4 for up to 10,000 samples per shard (as img2dataset's k). */
export function positionDigits(samplesPerShard: number): number {
  return Math.max(4, Math.ceil(Math.log10(samplesPerShard)));
}

/** Sample key: 5-digit shard index + position in the shard, e.g. `000420017`. Stable for ever for a row. */
export function sampleKey(shard: number, position: number, samplesPerShard: number): string {
  return shardName(shard) + String(position).padStart(positionDigits(samplesPerShard), '0');
}

/** Shard i holds input rows [i*S, (i+1)*S); the last one may be short. */
export function shardCount(totalRows: number, samplesPerShard: number): number {
  return Math.ceil(totalRows / samplesPerShard);
}

/** `<dataset>/queue/`: the opt-out snapshots that `fetch --queue` hands its workers (src/queue/optout-snapshot.ts). */
export function queueDir(datasetDir: string): string {
  return path.join(datasetDir, 'queue');
}

/** `<dataset>/queue/optout-<first 12 hex digits of its sha256>.sqlite`. */
export function optoutSnapshotFile(datasetDir: string, sha256: string): string {
  return path.join(queueDir(datasetDir), `optout-${sha256.slice(0, 12)}.sqlite`);
}
