/** Shared by the serve tests: the bundled sample's first two shards fetched into a fresh data root. */
import { cp, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import { readManifest, type ManifestRow } from '../../src/dataset/manifest.ts';
import { sampleCatalog } from '../../src/sample-data/catalog.ts';
import { renderSampleImage } from '../../src/sample-data/render.ts';
import { openIndex } from '../../src/index-db/db.ts';

export const PROJECT = path.resolve(import.meta.dirname, '../..');

export interface ServeFixture {
  dataRoot: string;
  dataset: string;
  rows: ManifestRow[];
}

/** 100 rows of the sample (2 shards of 50) fetched from the local sample server. */
export async function fetchSample(prefix: string): Promise<ServeFixture> {
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), `muse-${prefix}-`));
  const dataset = path.join(dataRoot, 'sample');
  const file = path.join(PROJECT, 'pipelines', 'sample.yaml');
  const cfg = resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 50 }), file);
  const summary = await runFetch({
    cfg,
    datasetDir: dataset,
    dataRoot,
    projectRoot: PROJECT,
    shards: '0-1',
    workers: 1,
    logFormat: 'json',
  });
  if (summary.shards_failed.length) throw new Error(`fixture fetch failed: shards ${summary.shards_failed.join(', ')}`);
  const rows = [
    ...(await readManifest(path.join(dataset, 'shards', '00000.arrow'))),
    ...(await readManifest(path.join(dataset, 'shards', '00001.arrow'))),
  ];
  return { dataRoot, dataset, rows };
}

/** The bytes the sample server sends for an input row (what fetch downloaded and hashed). */
export async function originalImage(row: number): Promise<Buffer> {
  return (await renderSampleImage(sampleCatalog()[row])).body;
}

/** A private copy of a data root holding the one dataset `sample` (tests change it): the index's path moved to the copy. */
export async function copyDataRoot(dataRoot: string, prefix: string): Promise<{ dataRoot: string; dataset: string }> {
  const copy = await mkdtemp(path.join(os.tmpdir(), `muse-${prefix}-`));
  await cp(dataRoot, copy, { recursive: true });
  const dataset = path.join(copy, 'sample');
  const index = openIndex(copy);
  try {
    index.db.prepare('UPDATE datasets SET path = ?').run(dataset);
  } finally {
    index.close();
  }
  return { dataRoot: copy, dataset };
}
