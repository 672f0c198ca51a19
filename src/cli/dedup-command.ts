/** `muse-data dedup <dataset> [--phash-distance 6] [--kinds url,sha256,phash[,pair]] [--against NAME...] [--apply]`. */
import type { Argv } from 'yargs';
import { DEFAULT_DISTANCE, DEFAULT_KINDS, parseKinds, runDedup, type DedupSummary } from '../dedup/run-dedup.ts';
import { MAX_DISTANCE } from '../dedup/bands.ts';
import { resolveDataRoot, resolveDatasetDir } from '../dataset/data-root.ts';
import { UsageError } from './run-cli.ts';
import { DEDUP_FILE } from '../dataset/decisions-file.ts';

export function dedupCommand(y: Argv) {
  return y
    .positional('dataset', {
      type: 'string',
      demandOption: true,
      describe: 'dataset folder, or a name under the data root (e.g. sample)',
    })
    .option('phash-distance', {
      type: 'number',
      default: DEFAULT_DISTANCE,
      describe: `near duplicate: dHash within this many bits (0-${MAX_DISTANCE})`,
    })
    .option('kinds', {
      type: 'string',
      default: DEFAULT_KINDS.join(','),
      describe: 'url, sha256 (identical bytes), pair (identical image + caption), phash (near duplicate)',
    })
    .option('against', {
      type: 'string',
      array: true,
      describe: 'reference dataset(s) in the index: their samples come first and are all kept',
    })
    .option('apply', {
      type: 'boolean',
      default: false,
      describe: `remove the duplicates from the shards (status "duplicate"); without it, list them in <dataset>/${DEDUP_FILE}`,
    })
    .option('reindex', {
      type: 'boolean',
      default: false,
      describe: 'record every shard manifest in the index again first',
    })
    .option('data-root', { type: 'string', describe: 'data root (default: $MUSE_DATA_ROOT or ./datasets)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' });
}

/** The flags, checked before the dataset is opened: a wrong one is a usage error (exit 2) naming the flag. */
function dedupFlags(a: Record<string, unknown>): { kinds: ReturnType<typeof parseKinds>; distance: number } {
  const distance = a['phash-distance'] as number;
  if (!Number.isInteger(distance) || distance < 0 || distance > MAX_DISTANCE) {
    throw new UsageError(
      `--phash-distance: expected an integer in 0..${MAX_DISTANCE} (bits of a 64-bit dHash), got ${String(distance)}`,
    );
  }
  try {
    return { kinds: parseKinds(a.kinds as string), distance };
  } catch (err) {
    throw new UsageError(`--kinds ${JSON.stringify(a.kinds)}: ${(err as Error).message}`);
  }
}

export async function dedupHandler(a: Record<string, unknown>): Promise<number> {
  const { kinds, distance } = dedupFlags(a);
  const dataRoot = resolveDataRoot(a['data-root'] as string | undefined);
  const against = ((a.against as string[] | undefined) ?? []).flatMap((s) => s.split(',')).filter(Boolean);
  const summary = await runDedup({
    dataRoot,
    datasetDir: resolveDatasetDir(a.dataset as string, dataRoot),
    kinds,
    distance,
    against,
    apply: a.apply as boolean,
    reindex: a.reindex as boolean,
  });
  process.stdout.write(a.json ? JSON.stringify(summary) + '\n' : formatSummary(summary));
  return 0;
}

export function formatSummary(s: DedupSummary): string {
  const kinds = Object.entries(s.duplicates)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const refs = s.reference_samples ? ` against ${s.reference_samples} reference samples` : '';
  const lines = [`dedup ${s.dataset}: ${s.samples} samples${refs} -> ${s.kept} kept; duplicates: ${kinds}`];
  if (s.phash) {
    const p = s.phash;
    lines.push(
      p.from_key === null
        ? 'near duplicates: nothing changed since the last run'
        : `near duplicates: ${p.lookups} lookups in ${p.indexed} hashes from ${p.from_key === '' ? 'the start' : `key ${p.from_key}`} (${(p.ms!.probe / 1000).toFixed(1)}s probing)`,
    );
  }
  if (s.applied)
    lines.push(
      `applied: ${s.applied.removed} samples removed from ${s.applied.shards} shard(s)${s.applied.skipped.length ? `; ${s.applied.skipped.length} incomplete shard(s) skipped` : ''}`,
    );
  else
    lines.push(
      `${s.pending} duplicates listed in dedup.arrow${s.file_written ? '' : ' (unchanged)'}; --apply removes them from the shards`,
    );
  return lines.join('\n') + '\n';
}
