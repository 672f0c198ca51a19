/**
 * The index of a data root, `<data root>/index.sqlite` (better-sqlite3): which datasets exist and the opt-out
 * lists. Its `samples` table (URL hash, image sha256, perceptual hash, caption hash, status per sample) is the old
 * sample index: fetch no longer writes it (shard runs do, ./sample-runs.ts); it still answers for shards fetched
 * before runs existed until `index compact` moves them, and dedup keeps its own copy there. Several
 * processes write to it at once (fetch workers, apply, dedup): WAL, a busy timeout, and write transactions taken
 * with BEGIN IMMEDIATE so that two writers queue instead of failing on a lock upgrade.
 */
import { hash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { urlHash, urlHashLoose } from '../optout/normalize-url.ts';
import { MIGRATIONS } from './schema.ts';

export const INDEX_FILE = 'index.sqlite';
/** How long a writer waits for another process's transaction before giving up (ms). */
export const BUSY_TIMEOUT_MS = 30_000;

export class IndexError extends Error {}

export interface DatasetRow {
  id: number;
  name: string;
  /** Absolute path of the dataset folder. */
  path: string;
  registered: string;
}

/** One sample as fetch records it (hex strings as in the manifest). */
export interface SampleInput {
  key: string;
  shard: number;
  url: string;
  /** sha256 of the downloaded bytes, 64 hex. */
  sha256?: string | null;
  /** 64-bit dHash, 16 hex. */
  phash?: string | null;
  caption?: string | null;
  status: string;
}

/** A sample found in the index, with its dataset. */
export interface SampleRef {
  datasetId: number;
  dataset: string;
  datasetPath: string;
  key: string;
  shard: number;
  status: string;
  sha256: string | null;
  phash: string | null;
}

export interface OpenOptions {
  readonly?: boolean;
}

export function indexPath(dataRoot: string): string {
  return path.join(path.resolve(dataRoot), INDEX_FILE);
}

export function openIndex(dataRoot: string, opts: OpenOptions = {}): IndexDb {
  return new IndexDb(indexPath(dataRoot), opts);
}

/** phash hex (16 digits, unsigned) <-> the signed int64 SQLite stores. */
export function phashToInt(hex: string): bigint {
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) throw new IndexError(`phash must be 16 hex digits, got ${JSON.stringify(hex)}`);
  return BigInt.asIntN(64, BigInt('0x' + hex));
}

export function phashFromInt(v: bigint | number): string {
  return BigInt.asUintN(64, BigInt(v)).toString(16).padStart(16, '0');
}

export function sha256Bytes(hex: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new IndexError(`sha256 must be 64 hex digits, got ${JSON.stringify(hex)}`);
  return Buffer.from(hex, 'hex');
}

/** The url_hash a sample is recorded with: of the normalised URL, or of the raw string when it does not parse. */
export function sampleUrlHash(url: string): Buffer {
  return urlHashLoose(url);
}

export function captionHash(caption: string): Buffer {
  return hash('sha256', caption, 'buffer').subarray(0, 8);
}

type SampleRow = {
  dataset_id: bigint;
  name: string;
  path: string;
  key: string;
  shard: bigint;
  status: string;
  sha256: Buffer | null;
  phash: bigint | null;
};

const SAMPLE_REF_SELECT =
  'SELECT s.dataset_id, d.name, d.path, s.key, s.shard, s.status, s.sha256, s.phash FROM samples s JOIN datasets d ON d.id = s.dataset_id';
const SAMPLES_BY_URL = `${SAMPLE_REF_SELECT} WHERE s.url_hash = ? ORDER BY s.dataset_id, s.key`;
const SAMPLES_BY_SHA256 = `${SAMPLE_REF_SELECT} WHERE s.sha256 = ? ORDER BY s.dataset_id, s.key`;

export class IndexDb {
  readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(
    readonly file: string,
    opts: OpenOptions = {},
  ) {
    if (opts.readonly && !existsSync(file))
      throw new IndexError(`no index at ${file} (nothing has been fetched or opted out under this data root)`);
    if (!opts.readonly) mkdirSync(path.dirname(file), { recursive: true });
    try {
      this.db = new Database(file, { readonly: !!opts.readonly, timeout: BUSY_TIMEOUT_MS });
    } catch (err) {
      throw new IndexError(`cannot open the index ${file}: ${(err as Error).message}`);
    }
    try {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      if (!opts.readonly) {
        this.db.pragma('journal_mode = WAL');
        this.db.pragma('synchronous = NORMAL');
      }
      this.db.pragma('cache_size = -32768'); // 32 MiB per connection
      // Reads through a memory map: a lookup touching uncached pages costs no read() system calls.
      this.db.pragma('mmap_size = 2147418112');
      this.migrate(!!opts.readonly);
    } catch (err) {
      this.db.close();
      if (err instanceof IndexError) throw err;
      // SQLite's own message ("file is not a database") names no file.
      throw new IndexError(
        `the index ${file} cannot be used: ${(err as Error).message} (restore it from a backup, or move it away: fetch and dedup rebuild the samples, the opt-out lists are lost)`,
      );
    }
  }

  private migrate(readonly: boolean): void {
    const version = () => this.db.pragma('user_version', { simple: true }) as number;
    const target = MIGRATIONS.length;
    const v = version();
    if (v > target)
      throw new IndexError(
        `${this.file} has schema version ${v}, newer than this muse understands (${target}); update muse`,
      );
    if (v === target) return;
    if (readonly)
      throw new IndexError(
        `${this.file} has schema version ${v}, older than ${target}; open it once read-write to migrate`,
      );
    // Another process may migrate at the same moment: re-read the version inside the write lock.
    this.db
      .transaction(() => {
        for (let i = version(); i < target; i++) this.db.exec(MIGRATIONS[i]);
        this.db.pragma(`user_version = ${target}`);
      })
      .immediate();
  }

  /** A prepared statement, prepared once per connection. */
  stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in one write transaction (BEGIN IMMEDIATE: writers queue on the busy timeout). */
  write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /**
   * Registers a dataset folder and returns its id. Idempotent by path: a folder keeps the name it was first
   * registered with. A name another folder holds is refused (names are unique: the server and \`optout apply\` find
   * datasets by name); so is an \`explicit\` name (\`fetch --name\`) that differs from the folder's registered one.
   */
  registerDataset(name: string, datasetPath: string, opts: { explicit?: boolean } = {}): number {
    const abs = path.resolve(datasetPath);
    return this.write(() => {
      const byPath = this.stmt('SELECT id, name FROM datasets WHERE path = ?').get(abs) as
        { id: number; name: string } | undefined;
      if (byPath) {
        if (opts.explicit && byPath.name !== name) {
          throw new IndexError(
            `${abs} is registered as dataset '${byPath.name}' in ${this.file}; a dataset keeps its name (drop --name, or use --name ${byPath.name})`,
          );
        }
        return byPath.id;
      }
      const byName = this.stmt('SELECT path FROM datasets WHERE name = ?').get(name) as { path: string } | undefined;
      if (byName) {
        throw new IndexError(
          `dataset name '${name}' is already taken by ${byName.path} in ${this.file}; name this one (${abs}) differently with --name, or fetch into another --out folder`,
        );
      }
      const row = this.stmt('INSERT INTO datasets(name, path, registered) VALUES (?, ?, ?) RETURNING id').get(
        name,
        abs,
        new Date().toISOString(),
      ) as { id: number };
      return row.id;
    });
  }

  datasets(): DatasetRow[] {
    return this.stmt('SELECT id, name, path, registered FROM datasets ORDER BY name, path').all() as DatasetRow[];
  }

  /** Upserts samples of one dataset in one transaction. */
  recordSamples(datasetId: number, rows: readonly SampleInput[]): void {
    const ins = this.stmt(
      `INSERT INTO samples(dataset_id, key, shard, url_hash, sha256, phash, caption_hash, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(dataset_id, key) DO UPDATE SET shard = excluded.shard, url_hash = excluded.url_hash, sha256 = excluded.sha256,
         phash = excluded.phash, caption_hash = excluded.caption_hash, status = excluded.status`,
    );
    this.write(() => {
      for (const r of rows) {
        ins.run(
          datasetId,
          r.key,
          r.shard,
          sampleUrlHash(r.url),
          r.sha256 ? sha256Bytes(r.sha256) : null,
          r.phash ? phashToInt(r.phash) : null,
          r.caption != null ? captionHash(r.caption) : null,
          r.status,
        );
      }
    });
  }

  /** Sets the status of samples (after a shard rewrite); unknown keys are ignored. */
  setSampleStatus(datasetId: number, keys: readonly string[], status: string): void {
    const upd = this.stmt('UPDATE samples SET status = ? WHERE dataset_id = ? AND key = ?');
    this.write(() => {
      for (const k of keys) upd.run(status, datasetId, k);
    });
  }

  /** Samples fetched from this URL (after normalisation), any dataset. Throws UrlError on an invalid URL. */
  samplesByUrl(url: string): SampleRef[] {
    return this.samplesByUrlHash(urlHash(url));
  }

  /** Samples by the 8-byte hash of the normalised URL. */
  samplesByUrlHash(hash: Buffer): SampleRef[] {
    return this.sampleRefs(SAMPLES_BY_URL, hash);
  }

  /** Samples whose downloaded image has this sha256 (hex), any dataset. */
  samplesBySha256(hex: string): SampleRef[] {
    return this.sampleRefs(SAMPLES_BY_SHA256, sha256Bytes(hex));
  }

  // Ordered by (dataset_id, key): the order of the url_hash / sha256 index entries, so no sort step.
  private sampleRefs(sql: string, arg: Buffer): SampleRef[] {
    const rows = this.stmt(sql).safeIntegers(true).all(arg) as SampleRow[];
    return rows.map((r) => ({
      datasetId: Number(r.dataset_id),
      dataset: r.name,
      datasetPath: r.path,
      key: r.key,
      shard: Number(r.shard),
      status: r.status,
      sha256: r.sha256 ? r.sha256.toString('hex') : null,
      phash: r.phash === null ? null : phashFromInt(r.phash),
    }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
