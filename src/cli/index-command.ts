/** `muse-data index compact [--data-root DIR]`: merges the sample index runs (src/dataset/sample-index.ts). */
import type { Argv } from 'yargs';
import { resolveDataRoot } from '../dataset/data-root.ts';
import { compactIndex } from '../dataset/sample-index.ts';
import { openIndex } from '../index-db/db.ts';

export function indexCommand(y: Argv) {
  return y
    .positional('action', {
      type: 'string',
      choices: ['compact'],
      demandOption: true,
      describe: 'compact: merge every shard run (and the old samples table of index.sqlite) into one sorted run',
    })
    .option('data-root', { type: 'string', describe: 'data root (default: $MUSE_DATA_ROOT or ./datasets)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' });
}

export async function indexHandler(a: Record<string, unknown>): Promise<number> {
  // Compaction only reads index.sqlite (datasets, old samples rows); a data root without one is an error.
  const index = openIndex(resolveDataRoot(a['data-root'] as string | undefined), { readonly: true });
  try {
    const r = await compactIndex(index, (m) => process.stderr.write(m + '\n'));
    process.stdout.write(
      a.json
        ? JSON.stringify(r) + '\n'
        : `index compact: ${r.rows} rows in one run; merged ${r.shardRunsMerged} shard run(s), ${r.runsMerged} compacted run(s), ${r.legacyShardsMoved} shard(s) from the old samples table; ${r.deleted} file(s) deleted\n`,
    );
    return 0;
  } finally {
    index.close();
  }
}
