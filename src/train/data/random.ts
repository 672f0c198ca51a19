// A seeded PRNG whose whole state is one uint32 (mulberry32, the same sequence as src/util/prng.ts), so a
// loader can save it in JSON and restore it exactly; and the per-epoch shard order derived from a seed.

export class SeededRandom {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    const a = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Mixes a seed with a stream tag and a counter into a new uint32 seed (splitmix-style finaliser). */
export function deriveSeed(seed: number, tag: number, counter: number): number {
  let z = (seed ^ Math.imul(tag + 1, 0x9e3779b9) ^ Math.imul(counter + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** 0..n-1 shuffled (Fisher–Yates) by a PRNG seeded from (seed, epoch): the shard order of an epoch. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return shuffled(
    Array.from({ length: n }, (_, i) => i),
    new SeededRandom(deriveSeed(seed, 1, epoch)),
  );
}

/**
 * The shard order of an epoch when datasets have weights: dataset d's shards `groups[d]` appear floor(w) times
 * plus a seeded subset of round(frac(w) * count) of them, all shuffled together.
 */
export function weightedEpochOrder(groups: number[][], weights: number[], seed: number, epoch: number): number[] {
  const rng = new SeededRandom(deriveSeed(seed, 3, epoch));
  const list: number[] = [];
  groups.forEach((shards, d) => {
    const w = weights[d];
    for (let k = 0; k < Math.floor(w); k++) list.push(...shards);
    const extra = Math.round((w - Math.floor(w)) * shards.length);
    list.push(...shuffled([...shards], rng).slice(0, extra));
  });
  return shuffled(list, rng);
}

function shuffled(list: number[], rng: SeededRandom): number[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}
