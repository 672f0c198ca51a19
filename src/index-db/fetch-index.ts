/**
 * What a fetch process needs from the index: the two opt-out tests (per row, so each is one prepared-statement
 * lookup). Each fetch process (the parent and every worker) opens its own connection; the dataset registration
 * is idempotent, so all of them get the same dataset id. A finished shard's samples are not sent here: the shard
 * job writes them beside the shard as an index run (src/index-db/sample-runs.ts).
 */
import type Database from 'better-sqlite3';
import { openIndex, type IndexDb } from './db.ts';
import { urlHashOrNull } from '../optout/normalize-url.ts';

export interface FetchIndex {
  readonly datasetId: number;
  /** True when the row's URL (normalised) is opted out. An invalid URL is never opted out (it fails to fetch). */
  urlOptedOut(url: string): boolean;
  /** The same test for a URL already hashed (`urlHash` of src/optout/normalize-url.ts). */
  urlHashOptedOut(hash: Buffer): boolean;
  /** True when an image with this sha256 (hex) is opted out. */
  imageOptedOut(sha256: string): boolean;
  close(): void;
}

export function openFetchIndex(dataRoot: string, name: string, datasetDir: string): FetchIndex {
  const index: IndexDb = openIndex(dataRoot);
  const datasetId = index.registerDataset(name, datasetDir);
  const urlStmt: Database.Statement = index.db.prepare('SELECT 1 FROM optout_urls WHERE url_hash = ?').pluck();
  const imageStmt: Database.Statement = index.db.prepare('SELECT 1 FROM optout_images WHERE sha256 = ?').pluck();
  return {
    datasetId,
    urlOptedOut(url) {
      const h = urlHashOrNull(url);
      return h !== null && urlStmt.get(h) !== undefined;
    },
    urlHashOptedOut: (h) => urlStmt.get(h) !== undefined,
    imageOptedOut(sha256) {
      return imageStmt.get(Buffer.from(sha256, 'hex')) !== undefined;
    },
    close: () => index.close(),
  };
}
