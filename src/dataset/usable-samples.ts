/**
 * The samples a stage reading images gets from a dataset: the usable ones (select.ts: complete shards, status
 * `ok`, not a decided duplicate, not opted out), shard by shard, each shard's in tar order, read with the one tar
 * reader (src/shards/tar-reader.ts). `muse-eval` reads a dataset as a real image set through this.
 */
import { readTarSamples, type TarSample } from '../shards/tar-reader.ts';
import { shardPaths } from './names.ts';
import { completeShards, selectSamples, type UsableRule } from './select.ts';

export async function* readUsableSamples(
  datasetDir: string,
  rule: UsableRule,
  shards?: readonly number[],
): AsyncGenerator<TarSample & { shard: number }> {
  for (const shard of shards ?? (await completeShards(datasetDir))) {
    const keys = new Set((await selectSamples(datasetDir, shard, rule)).map((s) => s.key));
    if (!keys.size) continue;
    for await (const s of readTarSamples(shardPaths(datasetDir, shard).tar)) if (keys.has(s.key)) yield { shard, ...s };
  }
}
