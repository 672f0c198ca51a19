/**
 * In-memory multi-index over a fixed, ordered list of 64-bit hashes (see bands.ts). Per band: a bucket table of
 * 65536 offsets (CSR) and, bucket by bucket, entries of three int32s (list position, hash high and low half)
 * interleaved, so a bucket is one sequential read. Entries of a bucket are in list order.
 *
 * Two ways to find the pairs within distance r, with the same result:
 * - `earlierNeighbours` looks up each position (probing the buckets near its band values): for a few lookups;
 * - `allPairs` joins each bucket with the buckets near it: every bucket pair is read once instead of once per
 *   lookup, so a whole-list pass makes ~16x fewer random memory reads.
 * A pair found in several bands is reported from the first band within that band's probe radius only.
 */
import { BAND_BITS, BAND_COUNT, bandRadii, flipMasks, popcount32 } from './bands.ts';

const BUCKETS = 1 << BAND_BITS;

function bandValue(hi: number, lo: number, band: number): number {
  return band === 0 ? (hi >>> 16) & 0xffff : band === 1 ? hi & 0xffff : band === 2 ? (lo >>> 16) & 0xffff : lo & 0xffff;
}

/** The first band in which two hashes differ by no more than that band's radius. */
function firstBandWithin(h1: number, l1: number, h2: number, l2: number, radii: readonly number[]): number {
  let b = 0;
  while (b < BAND_COUNT - 1 && popcount32(bandValue(h1, l1, b) ^ bandValue(h2, l2, b)) > radii[b]) b++;
  return b;
}

/** Growable (i, c, distance) triples: position i lies within distance of the earlier position c. */
export class PairList {
  length = 0;
  data = new Int32Array(3 * 1024);

  push(i: number, c: number, d: number): void {
    if (3 * this.length + 3 > this.data.length) {
      const next = new Int32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    const k = 3 * this.length++;
    this.data[k] = i;
    this.data[k + 1] = c;
    this.data[k + 2] = d;
  }

  /** The same pairs grouped by i in increasing order (counting sort; order within an i is kept). */
  sortedByI(size: number): PairList {
    const start = new Uint32Array(size + 1);
    for (let k = 0; k < this.length; k++) start[this.data[3 * k] + 1]++;
    for (let i = 0; i < size; i++) start[i + 1] += start[i];
    const out = new PairList();
    out.data = new Int32Array(Math.max(3, 3 * this.length));
    out.length = this.length;
    for (let k = 0; k < this.length; k++) {
      const at = 3 * start[this.data[3 * k]]++;
      out.data[at] = this.data[3 * k];
      out.data[at + 1] = this.data[3 * k + 1];
      out.data[at + 2] = this.data[3 * k + 2];
    }
    return out;
  }
}

export class NearIndex {
  readonly size: number;
  private readonly offsets: Uint32Array[] = [];
  /** Per band, 3 int32 per entry: position, hi, lo. */
  private readonly entries: Int32Array[] = [];

  /** `hi`/`lo`: the hashes' 32-bit halves in list order. */
  constructor(hi: Int32Array, lo: Int32Array) {
    if (hi.length !== lo.length) throw new Error('NearIndex: hi and lo differ in length');
    const n = (this.size = hi.length);
    for (let b = 0; b < BAND_COUNT; b++) {
      const offsets = new Uint32Array(BUCKETS + 1);
      for (let i = 0; i < n; i++) offsets[bandValue(hi[i], lo[i], b) + 1]++;
      for (let v = 0; v < BUCKETS; v++) offsets[v + 1] += offsets[v];
      const fill = offsets.slice(0, BUCKETS);
      const entries = new Int32Array(3 * n);
      for (let i = 0; i < n; i++) {
        const e = 3 * fill[bandValue(hi[i], lo[i], b)]++;
        entries[e] = i;
        entries[e + 1] = hi[i];
        entries[e + 2] = lo[i];
      }
      this.offsets.push(offsets);
      this.entries.push(entries);
    }
  }

  /**
   * Appends every pair (i, c, distance) with i in [from, to), c < i and distance <= r, in order of i (each c
   * once per i). One lookup per position.
   */
  earlierNeighbours(hi: Int32Array, lo: Int32Array, r: number, from: number, to: number, out: PairList): void {
    const radii = bandRadii(r);
    for (let i = from; i < to; i++) {
      const qh = hi[i];
      const ql = lo[i];
      for (let b = 0; b < BAND_COUNT; b++) {
        if (radii[b] < 0) continue;
        const masks = flipMasks(radii[b]);
        const offsets = this.offsets[b];
        const ent = this.entries[b];
        const v = bandValue(qh, ql, b);
        for (let m = 0; m < masks.length; m++) {
          const bucket = v ^ masks[m];
          const end = 3 * offsets[bucket + 1];
          for (let e = 3 * offsets[bucket]; e < end; e += 3) {
            const c = ent[e];
            if (c >= i) break; // entries of a bucket are in list order
            const d = popcount32(ent[e + 1] ^ qh) + popcount32(ent[e + 2] ^ ql);
            if (d <= r && firstBandWithin(ent[e + 1], ent[e + 2], qh, ql, radii) === b) out.push(i, c, d);
          }
        }
      }
    }
  }

  /** The pairs of `earlierNeighbours(.., from, size, ..)`, by joining buckets; grouped by i in increasing order. */
  allPairs(r: number, from: number): PairList {
    const radii = bandRadii(r);
    const out = new PairList();
    for (let b = 0; b < BAND_COUNT; b++) {
      if (radii[b] < 0) continue;
      const masks = flipMasks(radii[b]);
      const offsets = this.offsets[b];
      const ent = this.entries[b];
      for (let v = 0; v < BUCKETS; v++) {
        const s1 = 3 * offsets[v];
        const e1 = 3 * offsets[v + 1];
        if (s1 === e1) continue;
        for (let m = 0; m < masks.length; m++) {
          const w = v ^ masks[m];
          if (w < v) continue; // each pair of buckets once; m = 0 joins the bucket with itself
          const e2 = 3 * offsets[w + 1];
          for (let x = s1; x < e1; x += 3) {
            const px = ent[x];
            const hx = ent[x + 1];
            const lx = ent[x + 2];
            for (let y = w === v ? x + 3 : 3 * offsets[w]; y < e2; y += 3) {
              const py = ent[y];
              if (px < from && py < from) continue;
              const d = popcount32(ent[y + 1] ^ hx) + popcount32(ent[y + 2] ^ lx);
              if (d <= r && firstBandWithin(ent[y + 1], ent[y + 2], hx, lx, radii) === b) {
                if (px > py) out.push(px, py, d);
                else out.push(py, px, d);
              }
            }
          }
        }
      }
    }
    return out.sortedByI(this.size);
  }

  /** Every position within distance r of (hi, lo), with its distance, sorted by position. */
  within(hi: number, lo: number, r: number): Array<{ pos: number; distance: number }> {
    const radii = bandRadii(r);
    const out: Array<{ pos: number; distance: number }> = [];
    for (let b = 0; b < BAND_COUNT; b++) {
      if (radii[b] < 0) continue;
      const v = bandValue(hi, lo, b);
      const ent = this.entries[b];
      for (const mask of flipMasks(radii[b])) {
        for (let e = 3 * this.offsets[b][v ^ mask]; e < 3 * this.offsets[b][(v ^ mask) + 1]; e += 3) {
          const d = popcount32(ent[e + 1] ^ hi) + popcount32(ent[e + 2] ^ lo);
          if (d <= r && firstBandWithin(ent[e + 1], ent[e + 2], hi, lo, radii) === b)
            out.push({ pos: ent[e], distance: d });
        }
      }
    }
    return out.sort((a, b) => a.pos - b.pos);
  }
}

export interface NearDecision {
  /** List position of the duplicate. */
  pos: number;
  /** Position of the kept entry it duplicates (the nearest earlier kept one; ties: the earliest). */
  of: number;
  distance: number;
}

/**
 * Greedy near-duplicate decisions in list order: an entry is a duplicate when it lies within distance r of an
 * EARLIER KEPT entry (the nearest such; ties: the earliest), otherwise it is kept. `pairs` are the earlier
 * neighbours of positions >= `from`, grouped by i in increasing order; `kept` holds the state of positions <
 * `from` (references and entries decided by an earlier run) and receives the state of the others.
 * Deterministic: a function of the list.
 */
export function greedyNearDuplicates(pairs: PairList, kept: Uint8Array, from: number): NearDecision[] {
  const out: NearDecision[] = [];
  const p = pairs.data;
  let k = 0;
  while (k < pairs.length && p[3 * k] < from) k++;
  for (let i = from; i < kept.length; i++) {
    let best = -1;
    let bestD = 1 << 30;
    for (; k < pairs.length && p[3 * k] === i; k++) {
      const c = p[3 * k + 1];
      const d = p[3 * k + 2];
      if (kept[c] !== 0 && (d < bestD || (d === bestD && c < best))) {
        best = c;
        bestD = d;
      }
    }
    kept[i] = best < 0 ? 1 : 0;
    if (best >= 0) out.push({ pos: i, of: best, distance: bestD });
  }
  return out;
}
