// float16 bits -> float32 into a caller's buffer (one table lookup per element; the table is 256 KiB, built once).
let table: Float32Array | undefined;

function halfTable(): Float32Array {
  if (table) return table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return (table = t);
}

/** dst[dstAt + i] = half(src[srcAt + i]) for i < count. */
export function decodeHalfInto(src: Uint16Array, srcAt: number, count: number, dst: Float32Array, dstAt: number): void {
  const t = halfTable();
  for (let i = 0; i < count; i++) dst[dstAt + i] = t[src[srcAt + i]];
}
