/**
 * The manifest and stats of a hand-made shard (tests that write their own tar): one manifest row per sample with
 * the given status, then `_stats.json` last, as fetch does, so the shard counts as complete.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeManifest, type ManifestRow } from '../../src/dataset/manifest.ts';
import { shardPaths } from '../../src/dataset/names.ts';
import { summarize, writeStats } from '../../src/dataset/stats.ts';
import type { SampleStatus } from '../../src/shards/outcome.ts';

export async function writeShardRecords(
  datasetDir: string,
  shard: number,
  samples: ReadonlyArray<{ key: string; status: string; caption?: string; url?: string }>,
  opts: { complete?: boolean } = {},
): Promise<void> {
  await mkdir(path.join(datasetDir, 'shards'), { recursive: true });
  const rows: ManifestRow[] = samples.map((s, i) => ({
    key: s.key,
    row: i,
    url: s.url ?? `http://example.invalid/${s.key}.png`,
    caption: s.caption ?? 'a caption',
    status: s.status as SampleStatus,
    reason: s.status === 'ok' ? null : 'test',
    error: null,
    width: null,
    height: null,
    original_width: null,
    original_height: null,
    bytes: null,
    sha256: null,
    phash: null,
    cls: null,
    meta: null,
  }));
  const paths = shardPaths(datasetDir, shard);
  await writeManifest(paths.manifest, rows);
  if (opts.complete === false) return;
  const t = new Date(0).toISOString();
  await writeStats(paths.stats, {
    shard,
    ...summarize(rows),
    bytes_written: 0,
    start_time: t,
    end_time: t,
    duration_s: 0,
    timings_ms: {},
  });
}
