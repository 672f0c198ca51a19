/**
 * The opt-out lists in the index: URLs (by hash of the normalised URL, the original kept for display) and
 * images (by sha256). Bulk adds are sorted by key before they are inserted, so a big import walks the B-tree in
 * order instead of touching random pages.
 */
import type Database from 'better-sqlite3';
import { IndexError, type IndexDb } from '../index-db/db.ts';
import { UrlError, hashNormalized, normalizeUrl, urlHash } from './normalize-url.ts';

export const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

export interface Rejected {
  input: string;
  error: string;
}

export interface AddResult {
  /** New entries. */
  added: number;
  /** Entries that were opted out already. */
  already: number;
  invalid: Rejected[];
}

/** A URL ready to insert: hash of its normalised form plus the original. */
export interface PreparedUrl {
  hash: Buffer;
  url: string;
}

export function prepareUrl(url: string): PreparedUrl {
  return { hash: hashNormalized(normalizeUrl(url)), url };
}

const ROWS = 64;
const STAGING_PARTS = 16;
const STAGE_BATCH = 100_000;

/**
 * Takes the next opt-out list version (inside the caller's write transaction): every change to the lists gets
 * one, so `optout list --since V` and the datasets' last-applied version can say what is new.
 */
export function nextOptoutVersion(index: IndexDb): number {
  return index
    .stmt('UPDATE optout_state SET version = version + 1 WHERE id = 1 RETURNING version')
    .pluck()
    .get() as number;
}

/** The current opt-out list version (0: nothing versioned yet). */
export function optoutVersion(index: IndexDb): number {
  return index.stmt('SELECT version FROM optout_state WHERE id = 1').pluck().get() as number;
}

/** An ISO timestamp as an SQL literal (checked: it is spliced into a statement). */
function isoLiteral(iso: string): string {
  if (!/^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/.test(iso)) throw new Error(`not an ISO timestamp: ${iso}`);
  return `'${iso}'`;
}

export function parseSha256(hex: string): Buffer {
  const t = hex.trim();
  if (!SHA256_HEX.test(t)) throw new IndexError(`not a sha256 (64 hex digits): ${JSON.stringify(hex)}`);
  return Buffer.from(t, 'hex');
}

/** Insert order: by the key's first 32 bits (ties keep input order; near enough for B-tree locality). */
function sortedByKey<T>(items: T[], key: (t: T) => Buffer): T[] {
  if (items.length > 1 << 21) throw new Error('sortedByKey: batch too large');
  const order = new Float64Array(items.length);
  for (let i = 0; i < items.length; i++) order[i] = key(items[i]).readUInt32BE(0) * 2 ** 21 + i;
  order.sort();
  const out = new Array<T>(items.length);
  for (let i = 0; i < items.length; i++) out[i] = items[order[i] % 2 ** 21];
  return out;
}

export class OptoutStore {
  private readonly db: Database.Database;

  constructor(readonly index: IndexDb) {
    this.db = index.db;
  }

  /** Inserts prepared URLs in one transaction; at most 2M per call. */
  insertUrls(batch: PreparedUrl[], added = new Date().toISOString()): { added: number; already: number } {
    const lit = isoLiteral(added);
    const sorted = sortedByKey(batch, (u) => u.hash);
    const args: Array<Buffer | string> = new Array(2 * ROWS);
    let n = 0;
    this.index.write(() => {
      // The version is spliced in as an integer literal, like the timestamp (one statement per version).
      const v = nextOptoutVersion(this.index);
      // ROWS rows per statement: one call into SQLite per ROWS URLs instead of per URL.
      const many = this.index.db.prepare(
        `INSERT INTO optout_urls(url_hash, url, added, version) VALUES ${`(?, ?, ${lit}, ${v})`.repeat(ROWS).replaceAll(')(', '), (')} ON CONFLICT DO NOTHING`,
      );
      const one = this.index.db.prepare(
        `INSERT INTO optout_urls(url_hash, url, added, version) VALUES (?, ?, ${lit}, ${v}) ON CONFLICT DO NOTHING`,
      );
      let i = 0;
      for (; i + ROWS <= sorted.length; i += ROWS) {
        for (let j = 0; j < ROWS; j++) {
          args[2 * j] = sorted[i + j].hash;
          args[2 * j + 1] = sorted[i + j].url;
        }
        n += many.run(args).changes;
      }
      for (; i < sorted.length; i++) n += one.run(sorted[i].hash, sorted[i].url).changes;
    });
    return { added: n, already: batch.length - n };
  }

  /** A bulk loader for big URL imports (see UrlBulkLoader). */
  bulkUrls(added = new Date().toISOString()): UrlBulkLoader {
    return new UrlBulkLoader(this.index, added);
  }

  insertImages(batch: Buffer[], added = new Date().toISOString()): { added: number; already: number } {
    const ins = this.index.stmt(
      'INSERT INTO optout_images(sha256, added, version) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    );
    let n = 0;
    this.index.write(() => {
      const v = nextOptoutVersion(this.index);
      for (const h of sortedByKey(batch, (h) => h)) n += ins.run(h, added, v).changes;
    });
    return { added: n, already: batch.length - n };
  }

  addUrls(urls: readonly string[]): AddResult {
    const { ok, invalid } = partition(urls, prepareUrl);
    return { ...this.insertUrls(ok), invalid };
  }

  addImages(hexes: readonly string[]): AddResult {
    const { ok, invalid } = partition(hexes, parseSha256);
    return { ...this.insertImages(ok), invalid };
  }

  /** Removes URL opt-outs (matched after normalisation). */
  removeUrls(urls: readonly string[]): { removed: number; notFound: string[]; invalid: Rejected[] } {
    const { ok, invalid } = partition(urls, (u) => ({ url: u, hash: urlHash(u) }));
    const del = this.index.stmt('DELETE FROM optout_urls WHERE url_hash = ?');
    const notFound: string[] = [];
    this.index.write(() => {
      nextOptoutVersion(this.index);
      for (const u of ok) if (del.run(u.hash).changes === 0) notFound.push(u.url);
    });
    return { removed: ok.length - notFound.length, notFound, invalid };
  }

  removeImages(hexes: readonly string[]): { removed: number; notFound: string[]; invalid: Rejected[] } {
    const { ok, invalid } = partition(hexes, (h) => ({ hex: h, bytes: parseSha256(h) }));
    const del = this.index.stmt('DELETE FROM optout_images WHERE sha256 = ?');
    const notFound: string[] = [];
    this.index.write(() => {
      nextOptoutVersion(this.index);
      for (const h of ok) if (del.run(h.bytes).changes === 0) notFound.push(h.hex);
    });
    return { removed: ok.length - notFound.length, notFound, invalid };
  }

  /** Lookup by URL hash (8 bytes): the per-row test inside fetch. */
  hasUrlHash(hash: Buffer): boolean {
    return this.index.stmt('SELECT 1 FROM optout_urls WHERE url_hash = ?').pluck().get(hash) !== undefined;
  }

  /** Is this URL opted out (after normalisation)? Throws UrlError on an invalid URL. */
  hasUrl(url: string): boolean {
    return this.hasUrlHash(urlHash(url));
  }

  /** The original spelling stored for this URL's opt-out, if any. */
  storedUrl(url: string): string | undefined {
    return this.storedUrlByHash(urlHash(url));
  }

  storedUrlByHash(hash: Buffer): string | undefined {
    return this.index.stmt('SELECT url FROM optout_urls WHERE url_hash = ?').pluck().get(hash) as string | undefined;
  }

  hasImage(sha256: string | Buffer): boolean {
    const key = typeof sha256 === 'string' ? parseSha256(sha256) : sha256;
    return this.index.stmt('SELECT 1 FROM optout_images WHERE sha256 = ?').pluck().get(key) !== undefined;
  }

  counts(): { urls: number; images: number } {
    const count = (t: string) => this.index.stmt(`SELECT count(*) FROM ${t}`).pluck().get() as number;
    return { urls: count('optout_urls'), images: count('optout_images') };
  }

  /**
   * Every URL opt-out, in hash order (a stable order; the table is keyed by it); with `since`, only those added
   * at a later version, in version order.
   */
  listUrls(since?: number): IterableIterator<{ url: string; added: string | null; version: number }> {
    type Row = { url: string; added: string | null; version: number };
    if (since === undefined)
      return this.index.stmt('SELECT url, added, version FROM optout_urls').iterate() as IterableIterator<Row>;
    return this.index
      .stmt('SELECT url, added, version FROM optout_urls WHERE version > ? ORDER BY version')
      .iterate(since) as IterableIterator<Row>;
  }

  listImages(since?: number): IterableIterator<{ sha256: string; added: string | null; version: number }> {
    type Row = { sha256: string; added: string | null; version: number };
    if (since === undefined)
      return this.index
        .stmt('SELECT lower(hex(sha256)) AS sha256, added, version FROM optout_images')
        .iterate() as IterableIterator<Row>;
    return this.index
      .stmt('SELECT lower(hex(sha256)) AS sha256, added, version FROM optout_images WHERE version > ? ORDER BY version')
      .iterate(since) as IterableIterator<Row>;
  }
}

function partition<T>(inputs: readonly string[], parse: (s: string) => T): { ok: T[]; invalid: Rejected[] } {
  const ok: T[] = [];
  const invalid: Rejected[] = [];
  for (const input of inputs) {
    try {
      ok.push(parse(input));
    } catch (err) {
      if (!(err instanceof UrlError || err instanceof IndexError)) throw err;
      invalid.push({ input, error: err.message });
    }
  }
  return { ok, invalid };
}

/**
 * Bulk URL import in two phases. Inserting millions of random hashes straight into optout_urls rewrites most of
 * the B-tree's pages once per transaction; instead the URLs are first appended to STAGING_PARTS staging tables
 * (TEMP: private to this connection, no lock on the index, split by the hash's first 4 bits), then each part is
 * merged in key order with one INSERT ... SELECT ... ORDER BY, writing each page of the table about once. Each
 * part is its own short write transaction, so fetch workers recording shards are never held up for long.
 */
export class UrlBulkLoader {
  private readonly inserts: Database.Statement[] = [];
  private readonly one: Database.Statement[] = [];
  private pending: PreparedUrl[] = [];
  private staged = 0;
  private static seq = 0;
  private readonly prefix = `optout_stage${UrlBulkLoader.seq++}_`;

  constructor(
    private readonly index: IndexDb,
    private readonly added: string,
  ) {
    isoLiteral(added);
    for (let p = 0; p < STAGING_PARTS; p++) {
      index.db.exec(`CREATE TEMP TABLE ${this.prefix}${p} (url_hash BLOB NOT NULL, url TEXT NOT NULL)`);
      this.inserts.push(
        index.db.prepare(`INSERT INTO temp.${this.prefix}${p} VALUES ${'(?, ?), '.repeat(ROWS - 1)}(?, ?)`),
      );
      this.one.push(index.db.prepare(`INSERT INTO temp.${this.prefix}${p} VALUES (?, ?)`));
    }
  }

  add(u: PreparedUrl): void {
    this.pending.push(u);
    if (this.pending.length >= STAGE_BATCH) this.flush();
  }

  /** Writes pending URLs to the staging tables (one transaction on the temp database only). */
  private flush(): void {
    const parts: PreparedUrl[][] = Array.from({ length: STAGING_PARTS }, () => []);
    for (const u of this.pending) parts[u.hash[0] >> 4].push(u);
    const args: Array<Buffer | string> = new Array(2 * ROWS);
    this.index.db.transaction(() => {
      parts.forEach((rows, p) => {
        let i = 0;
        for (; i + ROWS <= rows.length; i += ROWS) {
          for (let j = 0; j < ROWS; j++) {
            args[2 * j] = rows[i + j].hash;
            args[2 * j + 1] = rows[i + j].url;
          }
          this.inserts[p].run(args);
        }
        for (; i < rows.length; i++) this.one[p].run(rows[i].hash, rows[i].url);
      });
    })();
    this.staged += this.pending.length;
    this.pending = [];
  }

  /** Merges the staged URLs into optout_urls (the first spelling of a URL wins) and drops the staging tables. */
  finish(): { added: number; already: number } {
    this.flush();
    let added = 0;
    try {
      // One version for the whole import.
      const v = this.index.write(() => nextOptoutVersion(this.index));
      for (let p = 0; p < STAGING_PARTS; p++) {
        const merge = this.index.db.prepare(
          `INSERT OR IGNORE INTO optout_urls(url_hash, url, added, version) SELECT url_hash, url, ${isoLiteral(this.added)}, ${v} FROM temp.${this.prefix}${p} ORDER BY url_hash, rowid`,
        );
        added += this.index.write(() => merge.run().changes);
      }
    } finally {
      this.drop();
    }
    return { added, already: this.staged - added };
  }

  /** Drops the staging tables without merging (an import that failed). */
  drop(): void {
    for (let p = 0; p < STAGING_PARTS; p++) this.index.db.exec(`DROP TABLE IF EXISTS temp.${this.prefix}${p}`);
  }
}
