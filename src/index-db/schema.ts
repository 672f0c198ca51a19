/**
 * Schema of `index.sqlite`, as migrations: MIGRATIONS[i] takes `user_version` i to i+1. Never edit a released
 * step; append one. Other modules own their tables (dedup: `dedup_*`, created IF NOT EXISTS by its own code).
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    registered TEXT NOT NULL
  );
  -- One row per input row that had a URL. url_hash: first 8 bytes of sha256(normalised URL); sha256: the 32
  -- bytes of the downloaded image's sha256; phash: 64-bit dHash as a signed int64; caption_hash: 8 bytes.
  CREATE TABLE samples (
    dataset_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    shard INTEGER NOT NULL,
    url_hash BLOB NOT NULL,
    sha256 BLOB,
    phash INTEGER,
    caption_hash BLOB,
    status TEXT NOT NULL,
    PRIMARY KEY (dataset_id, key)
  ) WITHOUT ROWID;
  CREATE INDEX samples_url_hash ON samples(url_hash);
  CREATE INDEX samples_sha256 ON samples(sha256);
  -- Opt-outs by URL (hash of the normalised URL; the original kept for display) and by image sha256.
  CREATE TABLE optout_urls (
    url_hash BLOB PRIMARY KEY,
    url TEXT NOT NULL,
    added TEXT
  ) WITHOUT ROWID;
  CREATE TABLE optout_images (
    sha256 BLOB PRIMARY KEY,
    added TEXT
  ) WITHOUT ROWID;
  `,
];
