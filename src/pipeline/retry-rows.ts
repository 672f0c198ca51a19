/**
 * `fetch --retry-status host_unresponsive,...`: a complete shard is fetched again for just the rows whose reason
 * (or status) is listed; every other row is kept as it was, manifest row and tar members copied byte for byte.
 * The old tar is read in key order alongside the new one being written (atomically, see ShardTarWriter), so
 * memory stays one sample.
 */
import { readManifest, type ManifestRow } from '../dataset/manifest.ts';
import { readTarSamples, type TarSample } from '../shards/tar-reader.ts';

/** Whether a manifest row (or a stats file's status/reason pair) is one the user asked to retry. */
export function isRetried(wanted: ReadonlySet<string>, status: string, reason: string | null): boolean {
  return wanted.has(status) || (reason !== null && wanted.has(reason));
}

export class KeptRows {
  private readonly samples: AsyncGenerator<TarSample>;

  private constructor(
    private readonly rows: Map<string, ManifestRow>,
    tar: string,
  ) {
    this.samples = readTarSamples(tar);
  }

  /** The rows of a complete shard that are not retried, and its tar to copy them from. */
  static async open(manifest: string, tar: string, wanted: ReadonlySet<string>): Promise<KeptRows> {
    const kept = new Map<string, ManifestRow>();
    for (const r of await readManifest(manifest)) if (!isRetried(wanted, r.status, r.reason)) kept.set(r.key, r);
    return new KeptRows(kept, tar);
  }

  /** The kept manifest row for `key`, or undefined when the row is to be fetched again. */
  get(key: string): ManifestRow | undefined {
    return this.rows.get(key);
  }

  /** The old tar's members of `key` (called in key order, only for rows with an image). */
  async members(key: string): Promise<Record<string, Buffer>> {
    for (;;) {
      const next = await this.samples.next();
      if (next.done) throw new Error(`the shard's tar has no sample ${key} although its manifest lists one`);
      if (next.value.key === key) return next.value.files;
    }
  }

  async close(): Promise<void> {
    await this.samples.return(undefined);
  }
}
