/**
 * `muse-data verify`: every cache folder (`tokens/<id>/`, `text/<id>/`) against the shards and its manifest:
 * a file per complete shard, readable, its sha256 and row count as the manifest says, and its keys exactly the
 * shard's selected samples (ok [+ fallback] minus dedup decisions) in key order. Stale = a file or manifest entry
 * that no longer matches its shard (e.g. the shard was rewritten but the cache was not) or has no shard.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import { shardName } from '../dataset/names.ts';
import {
  CACHE_DIR,
  EMPTY_FILE,
  arrowFileDamage,
  MANIFEST_FILE,
  keysOf,
  readCacheManifest,
  type CacheKind,
} from '../dataset/cache-format.ts';
import { sha256 } from './run-tokenize.ts';
import { completeShards, loadExclusions, selectSamples } from '../dataset/select.ts';

export type ProblemKind = 'missing' | 'unreadable' | 'hash' | 'count' | 'keys' | 'stale' | 'manifest';

export interface Problem {
  cache: string;
  file: string;
  kind: ProblemKind;
  detail: string;
}

export interface VerifyReport {
  caches: Array<{ cache: string; files: number; samples: number }>;
  problems: Problem[];
}

/** `dataRoot`: where the opt-out index is (opted-out samples still cached are reported). */
export async function verifyCaches(datasetDir: string, dataRoot?: string): Promise<VerifyReport> {
  const report: VerifyReport = { caches: [], problems: [] };
  const shards = await completeShards(datasetDir);
  const exclude = await loadExclusions(datasetDir, dataRoot);
  for (const kind of ['vq', 'text'] as CacheKind[]) {
    const root = path.join(datasetDir, CACHE_DIR[kind]);
    if (!existsSync(root)) continue;
    for (const ent of (await readdir(root, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      await verifyCache(datasetDir, kind, ent.name, shards, exclude, report);
    }
  }
  return report;
}

async function verifyCache(
  datasetDir: string,
  kind: CacheKind,
  id: string,
  shards: number[],
  exclude: Set<string>,
  report: VerifyReport,
) {
  const dir = path.join(datasetDir, CACHE_DIR[kind], id);
  const cache = `${CACHE_DIR[kind]}/${id}`;
  const problem = (file: string, k: ProblemKind, detail: string) =>
    report.problems.push({ cache, file, kind: k, detail });
  let manifest;
  try {
    manifest = await readCacheManifest(dir);
  } catch (err) {
    problem(MANIFEST_FILE, 'manifest', (err as Error).message);
    return;
  }
  if (!manifest) {
    problem(MANIFEST_FILE, 'missing', 'no manifest.json');
    return;
  }
  const includeFallbacks = manifest.include_fallbacks ?? false;
  const summary = { cache, files: 0, samples: 0 };
  report.caches.push(summary);
  const complete = new Set(shards.map(shardName));
  const onDisk = new Set(
    (await readdir(dir)).filter((f) => /^\d+\.arrow$/.test(f)).map((f) => f.slice(0, -'.arrow'.length)),
  );

  for (const name of new Set([...Object.keys(manifest.shards), ...onDisk])) {
    if (!complete.has(name)) problem(`${name}.arrow`, 'stale', 'no complete shard of that number');
    else if (!manifest.shards[name])
      problem(`${name}.arrow`, 'stale', 'file not listed in manifest.json (an interrupted run? rerun tokenize)');
  }
  for (const shard of shards) {
    const name = shardName(shard);
    const file = `${name}.arrow`;
    const entry = manifest.shards[name];
    if (!entry) {
      problem(file, 'missing', 'shard not tokenized');
      continue;
    }
    if (!onDisk.has(name)) {
      problem(file, 'missing', 'listed in manifest.json but the file is gone');
      continue;
    }
    const damage = arrowFileDamage(path.join(dir, file));
    if (damage) {
      problem(file, 'unreadable', `${damage}; rerun muse-data tokenize to rewrite it`);
      continue;
    }
    const bytes = await readFile(path.join(dir, file));
    let table: Table;
    try {
      table = tableFromIPC(bytes);
      keysOf(table);
    } catch (err) {
      problem(file, 'unreadable', `not a readable Arrow file (${(err as Error).message.split('\n')[0]}); truncated?`);
      continue;
    }
    summary.files++;
    summary.samples += table.numRows;
    const hash = sha256(bytes);
    if (hash !== entry.sha256_of_file)
      problem(file, 'hash', `sha256 ${hash.slice(0, 12)}… differs from manifest ${entry.sha256_of_file.slice(0, 12)}…`);
    if (table.numRows !== entry.samples)
      problem(file, 'count', `${table.numRows} rows, manifest says ${entry.samples}`);
    const expected = (await selectSamples(datasetDir, shard, { includeFallbacks, exclude })).map((s) => s.key);
    const got = keysOf(table);
    if (got.join() !== expected.join()) {
      const extra = got.filter((k) => !expected.includes(k));
      const lacking = expected.filter((k) => !got.includes(k));
      const what =
        extra.length || lacking.length
          ? `${extra.length} key(s) not selected in the shard (e.g. ${extra[0] ?? '-'}), ${lacking.length} missing (e.g. ${lacking[0] ?? '-'})`
          : 'keys out of order';
      problem(
        file,
        'keys',
        `${what}: stale (an opt-out not applied yet? run muse-data optout apply; else re-tokenize this shard)`,
      );
    }
  }
  if (kind === 'text') {
    const empty = path.join(dir, EMPTY_FILE);
    const damage = arrowFileDamage(empty);
    if (damage === 'missing') problem(EMPTY_FILE, 'missing', 'no empty-caption embedding');
    else if (damage) problem(EMPTY_FILE, 'unreadable', `${damage}; rerun muse-data tokenize to rewrite it`);
    else {
      try {
        const keys = keysOf(tableFromIPC(await readFile(empty)));
        if (keys.length !== 1 || keys[0] !== '')
          problem(EMPTY_FILE, 'keys', `expected one row with key "", found ${keys.length} row(s)`);
      } catch (err) {
        problem(EMPTY_FILE, 'unreadable', (err as Error).message.split('\n')[0]);
      }
    }
  }
}

export function formatReport(datasetDir: string, r: VerifyReport): string {
  const lines = r.caches.map((c) => `${c.cache}: ${c.files} file(s), ${c.samples} samples`);
  if (r.caches.length === 0 && r.problems.length === 0)
    lines.push(`no caches in ${datasetDir} (run muse-data tokenize)`);
  for (const p of r.problems) lines.push(`${p.kind.toUpperCase()} ${p.cache}/${p.file}: ${p.detail}`);
  if (r.problems.length) lines.push(`verify: ${r.problems.length} problem(s)`);
  else if (r.caches.length) lines.push('verify: all caches match their shards');
  return lines.join('\n') + '\n';
}
