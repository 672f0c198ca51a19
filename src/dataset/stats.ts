/**
 * `{i:05d}_stats.json`: counts per status and reason, bytes and timings. Written LAST: a shard is complete iff
 * its stats file exists (the same rule img2dataset's incremental mode uses).
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic.ts';
import { SAMPLE_STATUSES, type SampleStatus } from '../shards/outcome.ts';
import type { ManifestRow } from './manifest.ts';

export interface ShardStats {
  shard: number;
  count: number;
  /** ok + fallback: samples written to the tar. */
  written: number;
  successes: number;
  status: Record<SampleStatus, number>;
  /** status -> reason -> count (reasons of non-ok rows). */
  reasons: Record<string, Record<string, number>>;
  bytes_downloaded: number;
  bytes_written: number;
  start_time: string;
  end_time: string;
  duration_s: number;
  /** Summed per-sample wall time of each step, ms (steps overlap, so these do not add up to duration). */
  timings_ms: Record<string, number>;
}

export function summarize(
  rows: ManifestRow[],
): Pick<ShardStats, 'count' | 'written' | 'successes' | 'status' | 'reasons' | 'bytes_downloaded'> {
  const status = Object.fromEntries(SAMPLE_STATUSES.map((s) => [s, 0])) as Record<SampleStatus, number>;
  const reasons: Record<string, Record<string, number>> = {};
  let bytes = 0;
  for (const r of rows) {
    status[r.status]++;
    bytes += r.bytes ?? 0;
    if (r.status !== 'ok') {
      const byReason = (reasons[r.status] ??= {});
      const reason = r.reason ?? 'unknown';
      byReason[reason] = (byReason[reason] ?? 0) + 1;
    }
  }
  return {
    count: rows.length,
    written: status.ok + status.fallback,
    successes: status.ok,
    status,
    reasons,
    bytes_downloaded: bytes,
  };
}

export async function writeStats(file: string, stats: ShardStats): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(stats, null, 2) + '\n');
}

export async function readStats(file: string): Promise<ShardStats | null> {
  if (!existsSync(file)) return null;
  return JSON.parse(await readFile(file, 'utf8')) as ShardStats;
}
