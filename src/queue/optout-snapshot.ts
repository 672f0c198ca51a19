/**
 * The opt-out lists a distributed fetch checks, as a versioned read-only snapshot.
 *
 * Why a snapshot and not the index's location: the index is a SQLite database in WAL mode, which needs shared
 * memory on one host and is not safe to open from several machines over a network file system; and a snapshot
 * taken once when the run is enqueued makes every shard of the run use the same opt-out lists, so the result
 * does not depend on when a worker happened to take a shard. Opt-outs added later are applied to the finished
 * shards with `muse-data optout apply`, as for any fetch.
 *
 * The snapshot is a small SQLite file (rollback journal, opened read-only by workers) holding only the two
 * opt-out tables, named by its sha256, in `<dataset>/queue/`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openIndex } from '../index-db/db.ts';
import type { FetchIndex } from '../index-db/fetch-index.ts';
import { urlHashOrNull } from '../optout/normalize-url.ts';
import type { OptoutSnapshotRef } from './jobs.ts';
import { optoutSnapshotFile, queueDir } from '../dataset/names.ts';

/** Copies the data root's opt-out lists into `<datasetDir>/queue/optout-<sha12>.sqlite` (reused if present and intact). */
export async function writeOptoutSnapshot(dataRoot: string, datasetDir: string): Promise<OptoutSnapshotRef> {
  const dir = queueDir(datasetDir);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `optout-${process.pid}-${Date.now()}.sqlite.tmp`);
  await rm(tmp, { force: true });
  const index = openIndex(dataRoot);
  try {
    index.db.prepare('ATTACH DATABASE ? AS snap').run(tmp);
    index.db.exec(`
      CREATE TABLE snap.optout_urls (url_hash BLOB PRIMARY KEY) WITHOUT ROWID;
      CREATE TABLE snap.optout_images (sha256 BLOB PRIMARY KEY) WITHOUT ROWID;
      INSERT INTO snap.optout_urls SELECT url_hash FROM main.optout_urls ORDER BY url_hash;
      INSERT INTO snap.optout_images SELECT sha256 FROM main.optout_images ORDER BY sha256;
    `);
    index.db.exec('DETACH DATABASE snap');
  } finally {
    index.close();
  }
  const sha256 = createHash('sha256')
    .update(await readFile(tmp))
    .digest('hex');
  const file = optoutSnapshotFile(datasetDir, sha256);
  // Reused only when its content is what its name says: a damaged or edited copy is replaced (else every rerun
  // would enqueue jobs that its workers refuse on the hash check).
  const intact =
    existsSync(file) &&
    createHash('sha256')
      .update(await readFile(file))
      .digest('hex') === sha256;
  if (intact) await rm(tmp);
  else await rename(tmp, file);
  return { file, sha256 };
}

/** A worker's FetchIndex: opt-out tests from the snapshot (the shard job writes its index run itself). */
export async function openOptoutSnapshot(ref: OptoutSnapshotRef): Promise<FetchIndex> {
  let bytes: Buffer;
  try {
    bytes = await readFile(ref.file);
  } catch (err) {
    throw new Error(
      `opt-out snapshot ${ref.file}: cannot read it on this machine (${(err as Error).message}); the output folder must be shared by every worker`,
    );
  }
  const got = createHash('sha256').update(bytes).digest('hex');
  if (got !== ref.sha256)
    throw new Error(`opt-out snapshot ${ref.file}: sha256 ${got} does not match the job's ${ref.sha256}`);
  const db = new Database(ref.file, { readonly: true, fileMustExist: true });
  const urlStmt = db.prepare('SELECT 1 FROM optout_urls WHERE url_hash = ?').pluck();
  const imageStmt = db.prepare('SELECT 1 FROM optout_images WHERE sha256 = ?').pluck();
  return {
    datasetId: -1,
    urlOptedOut(url) {
      const h = urlHashOrNull(url);
      return h !== null && urlStmt.get(h) !== undefined;
    },
    urlHashOptedOut: (h) => urlStmt.get(h) !== undefined,
    imageOptedOut: (sha256) => imageStmt.get(Buffer.from(sha256, 'hex')) !== undefined,
    close: () => db.close(),
  };
}
