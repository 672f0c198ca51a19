/**
 * The migration of an index.sqlite written before sample runs: its `samples` rows (of shards that have no run)
 * copied into a Parquet run with a dataset_id column, sorted by URL hash, for `index compact` to merge.
 * The table itself stays: `dedup` still keeps its own copy of the samples there.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import type { IndexDb } from './db.ts';
import { copyAtomic, RUN_COLUMNS } from './sample-runs.ts';

type LegacyRow = [bigint, bigint, Buffer, Buffer | null, bigint | null, Buffer | null, string, string];

/** Returns dataset id -> shards copied. Writes nothing (and returns an empty map) when no row qualifies. */
export async function writeLegacyRows(
  con: DuckDBConnection,
  index: IndexDb,
  wanted: (datasetId: number, shard: number) => boolean,
  file: string,
): Promise<Map<number, Set<number>>> {
  const moved = new Map<number, Set<number>>();
  const t = `legacy_${process.pid}`;
  await con.run(`CREATE OR REPLACE TEMP TABLE ${t} (dataset_id INTEGER NOT NULL, ${RUN_COLUMNS})`);
  try {
    const app = await con.createAppender(t, 'main', 'temp');
    const rows = index
      .stmt('SELECT dataset_id, shard, url_hash, sha256, phash, caption_hash, key, status FROM samples')
      .safeIntegers(true)
      .raw()
      .iterate() as IterableIterator<LegacyRow>;
    let n = 0;
    for (const [datasetId, shard, url, sha, phash, caption, key, status] of rows) {
      const d = Number(datasetId);
      const s = Number(shard);
      if (!wanted(d, s)) continue;
      let shards = moved.get(d);
      if (!shards) moved.set(d, (shards = new Set()));
      shards.add(s);
      app.appendInteger(d);
      app.appendUBigInt(url.readBigUInt64BE(0));
      if (sha) {
        app.appendBlob(sha);
        app.appendUBigInt(sha.readBigUInt64BE(0));
      } else {
        app.appendNull();
        app.appendNull();
      }
      if (phash !== null) app.appendUBigInt(BigInt.asUintN(64, phash));
      else app.appendNull();
      if (caption) app.appendUBigInt(caption.readBigUInt64BE(0));
      else app.appendNull();
      app.appendVarchar(key);
      app.appendInteger(s);
      app.appendVarchar(status);
      app.endRow();
      n++;
    }
    app.closeSync();
    if (n) await copyAtomic(con, `SELECT * FROM temp.${t} ORDER BY url_hash, dataset_id, key`, file);
    return moved;
  } finally {
    await con.run(`DROP TABLE IF EXISTS temp.${t}`).catch(() => {});
  }
}
