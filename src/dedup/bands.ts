/**
 * Multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012) for 64-bit perceptual hashes: the hash is split
 * into m = 4 bands of 16 bits. If two hashes differ in at most r bits, then by pigeonhole some band differs in
 * at most floor(r/4) bits, so probing every band with all values within floor(r/4) bit flips of the query's
 * band (1, 17, 137 or 697 keys for radius 0..3) finds every candidate; each is then verified with the full
 * Hamming distance. `bandRadii` sharpens this per band.
 *
 * Why 4 x 16 for every r: for r <= 3 each probe is already an exact match (m >= r+1). Exact-match banding for
 * larger r (m = r+1) needs short bands: at the default r = 6 that is 7 bands of 9-10 bits, whose buckets hold
 * N/512 hashes each, about 14x the candidates of 4 x 16-bit bands probed at radius 1 (68 keys of ~N/65536 hashes
 * each) for N = 1M. Radius 2 (r <= 11) costs 548 keys per lookup, radius 3 (r <= 15) 2788; beyond that the scheme
 * degrades, so the distance is capped at MAX_DISTANCE.
 */

export const BAND_COUNT = 4;
export const BAND_BITS = 16;
export const MAX_DISTANCE = 15;

export type Bands = [number, number, number, number];

/** 16 hex digits -> the two 32-bit halves as signed ints (the form the probe loop works on). */
export function phashHalves(hex: string): { hi: number; lo: number } {
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) throw new Error(`phash must be 16 hex digits, got ${JSON.stringify(hex)}`);
  return { hi: parseInt(hex.slice(0, 8), 16) | 0, lo: parseInt(hex.slice(8), 16) | 0 };
}

export function halvesToHex(hi: number, lo: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/** Band j holds bits [63-16j .. 48-16j] (band 0 = the first 4 hex digits). */
export function bandsOf(hi: number, lo: number): Bands {
  return [(hi >>> 16) & 0xffff, hi & 0xffff, (lo >>> 16) & 0xffff, lo & 0xffff];
}

export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export function distance64(hiA: number, loA: number, hiB: number, loB: number): number {
  return popcount32(hiA ^ hiB) + popcount32(loA ^ loB);
}

export function checkDistance(r: number): void {
  if (!Number.isInteger(r) || r < 0 || r > MAX_DISTANCE) {
    throw new Error(`phash distance must be an integer in 0..${MAX_DISTANCE}, got ${r}`);
  }
}

/**
 * Probe radius of each band for a search radius r = 4q + a (0 <= a < 4): q for bands 0..a, q - 1 for the others
 * (-1: the band is not probed). Sharper pigeonhole (Norouzi et al. §3): if every band j <= a differed in q + 1
 * bits or more and every other band in q or more, the distance would be at least 4q + a + 1 > r. At r = 6 this
 * probes 17 + 17 + 17 + 1 = 52 keys instead of 68; at r = 4, 20 instead of 68.
 */
export function bandRadii(r: number): number[] {
  checkDistance(r);
  const q = Math.floor(r / BAND_COUNT);
  const a = r % BAND_COUNT;
  return Array.from({ length: BAND_COUNT }, (_, b) => (b <= a ? q : q - 1));
}

const maskCache = new Map<number, Uint16Array>();

/** Every 16-bit mask with at most `radius` bits set, fewest bits first (mask 0 first). Cached. */
export function flipMasks(radius: number): Uint16Array {
  let masks = maskCache.get(radius);
  if (!masks) {
    const list: number[] = [];
    for (let m = 0; m < 1 << BAND_BITS; m++) if (popcount32(m) <= radius) list.push(m);
    list.sort((a, b) => popcount32(a) - popcount32(b) || a - b);
    masks = Uint16Array.from(list);
    maskCache.set(radius, masks);
  }
  return masks;
}
