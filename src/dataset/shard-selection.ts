/**
 * The one `--shards` grammar (fetch, tokenize): "all", "4", "0-99", "3,5,7-9" -> sorted, de-duplicated shard
 * indices. With `total` (fetch knows how many shards the input makes) an index past the end is refused.
 */
export function parseShardSelection(spec: string | undefined, total?: number): number[] {
  if (spec === undefined || spec.trim() === '' || spec.trim() === 'all') {
    if (total === undefined) throw new Error("--shards: 'all' needs a known shard count");
    return Array.from({ length: total }, (_, i) => i);
  }
  const out = new Set<number>();
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new Error(`--shards: cannot read '${part}' (expected e.g. 0-99 or 3,5,7-9)`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new Error(`--shards: ${a}-${b} is empty (range '${part.trim()}' runs backwards)`);
    if (total !== undefined && b >= total)
      throw new Error(`--shards: shard ${b} does not exist; the input has ${total} shard(s) (0-${total - 1})`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}
