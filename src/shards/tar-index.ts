/**
 * Random access to a WebDataset tar's samples: each sample's member files (grouped by key and extension with
 * readTarSamples' rule, splitMemberName) and the byte range of each file's data, from one header scan. For readers
 * that fetch one sample at a time (the explorer) instead of streaming the tar.
 */
import { scanTar } from './tar-filter.ts';

const BLOCK = 512;

export interface MemberRange {
  offset: number;
  bytes: number;
}

/** key -> extension -> where that file's bytes are. Throws naming the file when the tar is damaged. */
export function indexTarSamples(file: string): Map<string, Record<string, MemberRange>> {
  const byKey = new Map<string, Record<string, MemberRange>>();
  for (const m of scanTar(file).members) {
    if (!m.key || m.fileBytes === 0) continue;
    // A member's data is the last ceil(size/512) blocks of its range.
    const range = { offset: m.end - Math.ceil(m.fileBytes / BLOCK) * BLOCK, bytes: m.fileBytes };
    const files = byKey.get(m.key);
    if (files) files[m.ext] = range;
    else byKey.set(m.key, { [m.ext]: range });
  }
  return byKey;
}
