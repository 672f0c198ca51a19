/**
 * The near-duplicate kind: the samples left after the exact kinds, in order, go through the greedy pass of
 * near-index.ts. Positions before `fromSeq` keep the state of the previous run (references: always kept), so an
 * incremental run probes only what may have changed.
 */
import type Database from 'better-sqlite3';
import { NearIndex, PairList, greedyNearDuplicates } from './near-index.ts';
import type { Universe } from './universe.ts';

/**
 * Looking up each new hash costs ~8x a bucket join per hash (random memory reads, measured at 1M hashes), so
 * the join serves whole passes and the lookups serve small additions.
 */
const LOOKUP_FRACTION = 1 / 8;

export interface PhashDecision {
  seq: number;
  ofSeq: number;
  distance: number;
}

export interface PhashStageResult {
  decisions: PhashDecision[];
  /** Hashes in the multi-index. */
  indexed: number;
  /** Hashes decided (those from `fromSeq` on). */
  lookups: number;
  /** How pairs were found: a bucket join over the whole index, or one lookup per new hash. */
  method: 'join' | 'lookup';
  /** Candidate pairs within the distance. */
  pairs: number;
  ms: { load: number; build: number; probe: number; greedy: number };
}

export function runPhashStage(
  db: Database.Database,
  u: Universe,
  targetId: number,
  r: number,
  fromSeq: number,
): PhashStageResult {
  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = Math.round(now - t);
    t = now;
    return ms;
  };
  // Survivors of the exact kinds with a hash, in order; `dup`: a near-duplicate decided by the previous run.
  const rows = db
    .prepare(
      `SELECT u.seq, u.hi, u.lo, d.key IS NOT NULL AS dup FROM temp.dedup_u u
       LEFT JOIN main.dedup_decisions d
         ON u.dataset_id = ? AND d.dataset_id = u.dataset_id AND d.key = u.key AND d.kind = 'phash' AND d.applied = 0
       WHERE u.hi IS NOT NULL AND NOT EXISTS (SELECT 1 FROM temp.dedup_exact x WHERE x.seq = u.seq)
       ORDER BY u.seq`,
    )
    .raw()
    .iterate(targetId) as IterableIterator<[number, number, number, number]>;
  let seqs = new Int32Array(1024);
  let hi = new Int32Array(1024);
  let lo = new Int32Array(1024);
  let kept = new Uint8Array(1024);
  let n = 0;
  for (const [seq, h, l, dup] of rows) {
    if (n === seqs.length) [seqs, hi, lo, kept] = [grow(seqs), grow(hi), grow(lo), grow(kept)];
    seqs[n] = seq;
    hi[n] = h | 0;
    lo[n] = l | 0;
    kept[n] = dup ? 0 : 1;
    n++;
  }
  [seqs, hi, lo, kept] = [seqs.subarray(0, n), hi.subarray(0, n), lo.subarray(0, n), kept.subarray(0, n)];
  let from = 0;
  while (from < n && seqs[from] < fromSeq) from++;
  const load = lap();

  const index = new NearIndex(hi, lo);
  const build = lap();
  const join = n - from > n * LOOKUP_FRACTION;
  let pairs: PairList;
  if (join) pairs = index.allPairs(r, from);
  else index.earlierNeighbours(hi, lo, r, from, n, (pairs = new PairList()));
  const probe = lap();
  const decisions = greedyNearDuplicates(pairs, kept, from).map((d) => ({
    seq: seqs[d.pos],
    ofSeq: seqs[d.of],
    distance: d.distance,
  }));
  const greedy = lap();
  return {
    decisions,
    indexed: n,
    lookups: n - from,
    method: join ? 'join' : 'lookup',
    pairs: pairs.length,
    ms: { load, build, probe, greedy },
  };
}

function grow<T extends Int32Array | Uint8Array>(a: T): T {
  const next = new (a.constructor as new (n: number) => T)(a.length * 2);
  next.set(a);
  return next;
}
