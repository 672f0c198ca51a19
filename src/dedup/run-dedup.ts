/**
 * `muse-data dedup`: decides which samples of a dataset are duplicates, stores the decisions in the index,
 * writes `<dataset>/dedup.arrow`, and with `apply` removes them from the shards.
 *
 * Rules (deterministic: a function of the set of samples, never of fetch order, workers or interruptions):
 * - order: samples of the reference datasets (`against`, by registration order in the index), then the dataset's
 *   own, each by key; among duplicates the first in this order is kept, so within a dataset the lowest key;
 * - kinds run in the fixed order url -> sha256 -> pair -> phash, each on the samples the previous ones kept;
 * - exact kinds: a sample is a duplicate of the first sample with the same value;
 * - phash: greedy in order: a sample is a near duplicate when its dHash is within `distance` bits of an EARLIER
 *   KEPT sample (it names the nearest; ties: the earliest). Chains do not propagate: if B is a near duplicate of
 *   A and C is near B but not A, C is kept. No two kept samples are within the distance.
 * - references are all kept and never get decisions; only the target dataset does.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { openIndex, type IndexDb } from '../index-db/db.ts';
import { applyDecisions, type ApplyResult } from './apply.ts';
import { checkDistance } from './bands.ts';
import { writeDuplicatesFile, type DuplicateRow } from '../dataset/decisions-file.ts';
import { datasetName } from '../dataset/dataset-json.ts';
import { lockDataset } from '../dataset/lock.ts';
import { shardsDir } from '../dataset/names.ts';
import { indexFromManifests } from './index-manifests.ts';
import { runPhashStage, type PhashStageResult } from './phash-stage.ts';
import { findChanges, seqAtKey } from './resume.ts';
import { ensureDedupSchema } from './schema.ts';
import { readRun, writeOutcome } from './store.ts';
import { KINDS, decideExact, loadUniverse, referencesFingerprint, type DedupKind } from './universe.ts';

export const DEFAULT_KINDS: DedupKind[] = ['url', 'sha256', 'phash'];
export const DEFAULT_DISTANCE = 6;

export interface DedupOptions {
  dataRoot: string;
  datasetDir: string;
  kinds?: readonly DedupKind[];
  /** Hamming distance (bits of 64) for the phash kind; 0..15. */
  distance?: number;
  /** Reference datasets (names or folders known to the index): their samples come first and are all kept. */
  against?: readonly string[];
  apply?: boolean;
  /** Re-record every shard's manifest in the index first. */
  reindex?: boolean;
  log?: (m: string) => void;
}

export interface DedupSummary {
  dataset: string;
  samples: number;
  reference_samples: number;
  /** Duplicates among the samples, per kind. */
  duplicates: Record<DedupKind, number>;
  /** Duplicates still in the shards (listed in dedup.arrow); 0 after `apply`. */
  pending: number;
  kept: number;
  indexed_from_manifests: number;
  /** Near-duplicate pass: from which key it ran (null: nothing changed, '' from the start). */
  phash: ({ from_key: string | null } & Partial<Omit<PhashStageResult, 'decisions'>>) | null;
  file_written: boolean;
  applied: ApplyResult | null;
  seconds: number;
  /** Wall time per step. */
  ms: Record<string, number>;
}

export class DedupError extends Error {}

export function parseKinds(list: string): DedupKind[] {
  const kinds = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const k of kinds)
    if (!(KINDS as readonly string[]).includes(k))
      throw new DedupError(`unknown dedup kind '${k}' (kinds: ${KINDS.join(', ')})`);
  if (!kinds.length) throw new DedupError('--kinds names no kind');
  return KINDS.filter((k) => kinds.includes(k));
}

function resolveReferences(
  index: IndexDb,
  targetId: number,
  against: readonly string[],
): Array<{ id: number; name: string }> {
  const all = index.db.prepare('SELECT id, name, path FROM datasets ORDER BY id').all() as Array<{
    id: number;
    name: string;
    path: string;
  }>;
  const refs = against.map((a) => {
    const hit = all.find((d) => d.name === a) ?? all.find((d) => d.path === path.resolve(a));
    if (!hit)
      throw new DedupError(
        `--against ${a}: no such dataset in the index (known: ${all.map((d) => d.name).join(', ') || 'none'})`,
      );
    if (hit.id === targetId) throw new DedupError(`--against ${a}: that is the dataset being deduplicated`);
    return hit;
  });
  return [...new Map(refs.map((r) => [r.id, r])).values()].sort((a, b) => a.id - b.id);
}

export async function runDedup(o: DedupOptions): Promise<DedupSummary> {
  const started = performance.now();
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const kinds = KINDS.filter((k) => (o.kinds ?? DEFAULT_KINDS).includes(k));
  const distance = o.distance ?? DEFAULT_DISTANCE;
  checkDistance(distance);
  const datasetDir = path.resolve(o.datasetDir);
  if (!existsSync(shardsDir(datasetDir))) throw new DedupError(`${datasetDir} is not a dataset folder (no shards/)`);
  const name = datasetName(datasetDir);
  // One rewriter per dataset at a time (src/dataset/lock.ts): with --apply the lock is held from the decisions to
  // their removal, so an opt-out applied meanwhile cannot leave decisions made against samples it removed.
  if (!o.apply) return dedupUnlocked(o, datasetDir, name, kinds, distance, started, log);
  const release = await lockDataset(datasetDir, 'dedup --apply', { onWait: log });
  try {
    return await dedupUnlocked(o, datasetDir, name, kinds, distance, started, log);
  } finally {
    await release();
  }
}

async function dedupUnlocked(
  o: DedupOptions,
  datasetDir: string,
  name: string,
  kinds: DedupKind[],
  distance: number,
  started: number,
  log: (m: string) => void,
): Promise<DedupSummary> {
  const ms: Record<string, number> = {};
  let mark = performance.now();
  const lap = (step: string) => {
    const now = performance.now();
    ms[step] = (ms[step] ?? 0) + Math.round(now - mark);
    mark = now;
  };
  const index = openIndex(o.dataRoot);
  try {
    const db = index.db;
    ensureDedupSchema(db);
    const targetId = index.registerDataset(name, datasetDir);
    const refs = resolveReferences(index, targetId, o.against ?? []);
    const indexed = (await indexFromManifests(index, targetId, datasetDir, o.reindex)).samples;
    if (indexed) log(`indexed ${indexed} samples of ${name} from its shard manifests`);
    lap('index_manifests');
    const settings = JSON.stringify({
      kinds,
      phash_distance: kinds.includes('phash') ? distance : null,
      references: refs.map((r) => r.id),
    });

    let phash: DedupSummary['phash'] = null;
    for (let attempt = 1; ; attempt++) {
      // Read a consistent snapshot (fetch workers may be writing), decide, then write if nobody else did meanwhile.
      const read = db.transaction(() => {
        const prev = readRun(db, targetId);
        const u = loadUniverse(
          db,
          refs.map((r) => r.id),
          targetId,
        );
        lap('load');
        decideExact(db, kinds, u);
        lap('exact');
        const run = { settings, refsFingerprint: referencesFingerprint(db, u) };
        const full = !prev || prev.settings !== run.settings || prev.refsFingerprint !== run.refsFingerprint;
        const changes = findChanges(db, targetId);
        const fromKey = !kinds.includes('phash') ? null : full ? '' : changes.firstKey;
        lap('changes');
        return { prev, u, run, fromKey, membersChanged: changes.added + changes.removed > 0 };
      })();
      const { u, run, fromKey, membersChanged } = read;
      const stage =
        fromKey === null
          ? null
          : runPhashStage(db, u, targetId, distance, fromKey === '' ? u.targetStart : seqAtKey(db, targetId, fromKey));
      if (stage)
        phash = {
          from_key: fromKey,
          indexed: stage.indexed,
          lookups: stage.lookups,
          method: stage.method,
          pairs: stage.pairs,
          ms: stage.ms,
        };
      else phash = kinds.includes('phash') ? { from_key: null } : null;
      lap('phash');
      const committed = index.write(() => {
        if (readRun(db, targetId)?.generation !== read.prev?.generation) return false;
        writeOutcome(db, {
          targetId,
          run,
          fromKey: kinds.includes('phash') ? fromKey : '',
          phash: stage?.decisions ?? [],
          membersChanged,
        });
        return true;
      });
      lap('write');
      if (committed) break;
      if (attempt === 3) throw new DedupError(`another dedup of ${name} keeps writing at the same time; try again`);
      log('another dedup run wrote meanwhile; redoing');
    }
    const samples = db
      .prepare('SELECT count(*) FROM temp.dedup_u WHERE dataset_id = ?')
      .pluck()
      .get(targetId) as number;
    const referenceSamples = db
      .prepare('SELECT count(*) FROM temp.dedup_u WHERE dataset_id <> ?')
      .pluck()
      .get(targetId) as number;

    const applied = o.apply ? await applyDecisions(index, targetId, datasetDir, log) : null;
    lap('apply');
    const rows = pendingRows(index, targetId);
    const fileWritten = await writeDuplicatesFile(datasetDir, rows, settings);
    lap('file');
    const duplicates = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<DedupKind, number>;
    const perKind = db
      .prepare(
        `SELECT kind, count(*) AS n FROM dedup_decisions x WHERE dataset_id = ?
         AND EXISTS (SELECT 1 FROM temp.dedup_u u WHERE u.dataset_id = x.dataset_id AND u.key = x.key) GROUP BY kind`,
      )
      .all(targetId) as Array<{ kind: DedupKind; n: number }>;
    for (const { kind, n } of perKind) duplicates[kind] = n;
    const total = perKind.reduce((a, k) => a + k.n, 0);
    return {
      dataset: name,
      samples,
      reference_samples: referenceSamples,
      duplicates,
      pending: rows.length,
      kept: samples - total,
      indexed_from_manifests: indexed,
      phash,
      file_written: fileWritten,
      applied,
      seconds: Math.round(performance.now() - started) / 1000,
      ms,
    };
  } finally {
    index.close();
  }
}

function pendingRows(index: IndexDb, targetId: number): DuplicateRow[] {
  return index.db
    .prepare(
      `SELECT x.key, x.duplicate_of_key AS duplicate_of, d.name AS duplicate_of_dataset, x.kind, x.distance
       FROM dedup_decisions x JOIN datasets d ON d.id = x.duplicate_of_dataset
       WHERE x.dataset_id = ? AND x.applied = 0 ORDER BY x.key`,
    )
    .all(targetId) as DuplicateRow[];
}
