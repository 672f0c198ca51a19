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
  // 2: a versioned opt-out list, opt-out requests filed through `muse-data serve`, and the explorer's per-sample
  // view of the manifests (with FTS5 over captions), filled by `serve` from the shard manifests.
  `
  -- Every change to the opt-out lists takes the next version; entries added before versioning are version 0.
  CREATE TABLE optout_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
  );
  INSERT INTO optout_state(id, version) VALUES (1, 0);
  ALTER TABLE optout_urls ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE optout_images ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX optout_urls_version ON optout_urls(version);
  CREATE INDEX optout_images_version ON optout_images(version);
  -- Each run of \`optout apply\` on a dataset: the opt-out version it applied.
  CREATE TABLE optout_applies (
    dataset_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    applied TEXT NOT NULL,
    PRIMARY KEY (dataset_id, version)
  ) WITHOUT ROWID;
  -- Requests: state pending -> accepted (its entries added to the lists at \`version\`) | rejected.
  -- token: the unguessable id of the request's public page.
  CREATE TABLE optout_requests (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    urls TEXT NOT NULL,
    sha256s TEXT NOT NULL,
    contact TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    decided TEXT,
    reason TEXT,
    version INTEGER
  );
  CREATE INDEX optout_requests_state ON optout_requests(state, id);
  -- The explorer's copy of the manifests (one row per input row), refreshed per shard when its stats file changes.
  CREATE TABLE explore_shards (
    dataset_id INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    stamp TEXT NOT NULL,
    PRIMARY KEY (dataset_id, shard)
  ) WITHOUT ROWID;
  CREATE TABLE explore_samples (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    shard INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    width INTEGER,
    height INTEGER,
    original_width INTEGER,
    original_height INTEGER,
    url TEXT NOT NULL,
    caption TEXT,
    meta TEXT,
    UNIQUE (dataset_id, key)
  );
  CREATE INDEX explore_samples_status ON explore_samples(dataset_id, status, reason, key);
  CREATE INDEX explore_samples_shard ON explore_samples(dataset_id, shard);
  CREATE VIRTUAL TABLE explore_captions USING fts5(caption, content='explore_samples', content_rowid='id');
  CREATE TRIGGER explore_samples_ai AFTER INSERT ON explore_samples BEGIN
    INSERT INTO explore_captions(rowid, caption) VALUES (new.id, new.caption);
  END;
  CREATE TRIGGER explore_samples_ad AFTER DELETE ON explore_samples BEGIN
    INSERT INTO explore_captions(explore_captions, rowid, caption) VALUES ('delete', old.id, old.caption);
  END;
  `,
  // 3: dataset names are unique (the server, opt-out search and \`optout apply\` find a dataset by name). Fetch once
  // named every \`--input\` dataset \`custom\`: a name shared by several folders becomes each folder's own name (its
  // last path component), and a name still shared after that gets \`-<id>\` on all but the first registered.
  `
  UPDATE datasets SET name = substr(path, length(rtrim(path, replace(path, '/', ''))) + 1)
    WHERE name IN (SELECT name FROM datasets GROUP BY name HAVING count(*) > 1);
  UPDATE datasets SET name = name || '-' || id
    WHERE id NOT IN (SELECT min(id) FROM datasets GROUP BY name);
  CREATE UNIQUE INDEX datasets_name ON datasets(name);
  `,
];
