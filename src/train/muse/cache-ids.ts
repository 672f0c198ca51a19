/**
 * Which token caches of a dataset a config trains on. tokenize names a cache folder after the model
 * (`tokens/<vq-id>/`, `text/<encoder-id>/`) and records the model and its weights' sha256 in the cache
 * manifest; here the config's `model.vq` / `model.text_encoder` are matched to those folders, so a run never
 * trains on tokens of other weights than the VQGAN that will decode its samples.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { CACHE_DIR, readCacheManifest, type CacheKind } from '../../dataset/cache-format.ts';
import { BUILTIN_VQ_ID, hashWeightFiles, parseVqSpec } from '../../models/registry.ts';
import { BYT5_TINY_ID, parseTextEncoderSpec, textEncoderSpecs } from '../../models/text/index.ts';

async function cacheIds(datasetDir: string, kind: CacheKind): Promise<string[]> {
  const dir = path.join(datasetDir, CACHE_DIR[kind]);
  if (!existsSync(dir)) return [];
  return (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

/** The cache among `ids` whose manifest records weights with this sha256. */
async function cacheWithWeights(
  datasetDir: string,
  kind: CacheKind,
  ids: string[],
  sha: string,
): Promise<string | undefined> {
  for (const id of ids) {
    const m = await readCacheManifest(path.join(datasetDir, CACHE_DIR[kind], id));
    if (m?.weights_sha256 === sha) return id;
  }
  return undefined;
}

function noCache(datasetDir: string, kind: CacheKind, what: string, found: string[]): Error {
  const flag = kind === 'vq' ? `--vq ${what}` : `--text ${what}`;
  return new Error(
    `${datasetDir}: no ${kind === 'vq' ? 'image token' : 'text'} cache made with ${what}` +
      (found.length ? ` (found ${found.join(', ')})` : '') +
      `; run muse-data tokenize ${datasetDir} ${flag}, or set data.${kind === 'vq' ? 'vq_id' : 'text_id'}`,
  );
}

/** The `tokens/<id>` cache made with `vqSpec` ('builtin' or a VQGAN folder). */
export async function resolveVqCacheId(datasetDir: string, vqSpec: string, explicit: string | null): Promise<string> {
  const found = await cacheIds(datasetDir, 'vq');
  if (explicit) {
    if (!found.includes(explicit)) throw noCache(datasetDir, 'vq', explicit, found);
    return explicit;
  }
  const spec = parseVqSpec(vqSpec);
  if (spec.kind === 'builtin') {
    const builtin = found.filter((id) => id === BUILTIN_VQ_ID || id.startsWith(`${BUILTIN_VQ_ID}-`));
    if (builtin.length === 1) return builtin[0];
    if (builtin.length > 1)
      throw new Error(`${datasetDir}: several built-in VQ caches (${builtin.join(', ')}); set data.vq_id`);
    throw noCache(datasetDir, 'vq', 'builtin', found);
  }
  const id = await cacheWithWeights(datasetDir, 'vq', found, await hashWeightFiles(spec.dir));
  if (!id) throw noCache(datasetDir, 'vq', vqSpec, found);
  return id;
}

/** The `text/<id>` cache made with the encoder `spec` ('byt5-tiny', 't5:DIR', 'clip:DIR'). */
export async function resolveTextCacheId(datasetDir: string, spec: string, explicit: string | null): Promise<string> {
  const found = await cacheIds(datasetDir, 'text');
  if (explicit) {
    if (!found.includes(explicit)) throw noCache(datasetDir, 'text', explicit, found);
    return explicit;
  }
  const parsed = parseTextEncoderSpec(spec);
  if (parsed.kind === 'builtin') {
    if (found.includes(BYT5_TINY_ID)) return BYT5_TINY_ID;
    throw noCache(datasetDir, 'text', spec, found);
  }
  const id = await cacheWithWeights(datasetDir, 'text', found, await hashWeightFiles(parsed.dir));
  if (!id) throw noCache(datasetDir, 'text', spec, found);
  return id;
}

/**
 * The text cache ids of `model.text_encoder` (one per encoder spec); `explicit` (data.text_id) names them the
 * same way, comma-separated in the same order.
 */
export async function resolveTextCacheIds(
  datasetDir: string,
  spec: string,
  explicit: string | null,
): Promise<string[]> {
  const specs = textEncoderSpecs(spec);
  const ids = explicit ? textEncoderSpecs(explicit) : undefined;
  if (ids && ids.length !== specs.length) {
    throw new Error(
      `data.text_id '${explicit}' names ${ids.length} cache(s), model.text_encoder '${spec}' ${specs.length} encoder(s): give one id per encoder, comma-separated in the same order`,
    );
  }
  const out: string[] = [];
  for (const [i, s] of specs.entries()) out.push(await resolveTextCacheId(datasetDir, s, ids ? ids[i] : null));
  return out;
}
