import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readdirSync } from 'node:fs';
import { ConfigError, loadPipelineFile, resolvePipeline, resolvePipelinePath } from '../../src/pipeline/config.ts';
import { flagsToOverrides } from '../../src/cli/fetch-command.ts';
import { deepMerge } from '../../src/pipeline/config.ts';
import { parseShardSelection } from '../../src/pipeline/run-fetch.ts';

const root = path.resolve(import.meta.dirname, '../..');

test('every bundled pipeline file loads and validates', async () => {
  const names = readdirSync(path.join(root, 'pipelines')).filter((f) => f.endsWith('.yaml'));
  assert.ok(names.length >= 6);
  for (const name of names) {
    const file = path.join(root, 'pipelines', name);
    const cfg = resolvePipeline(await loadPipelineFile(file), file);
    assert.equal(cfg.name, name.slice(0, -5));
  }
});

test('laion is an alias of laion2b-en; unknown names get a suggestion', () => {
  assert.equal(path.basename(resolvePipelinePath('laion', root)), 'laion2b-en.yaml');
  assert.throws(() => resolvePipelinePath('coyo700', root), /unknown pipeline 'coyo700' \(did you mean 'coyo700m'\?\)/);
});

test('config errors name the source and the key', () => {
  const base = { input: { files: ['x.parquet'], url_col: 'URL' } };
  assert.throws(
    () => resolvePipeline({ ...base, image: { sise: 3 } }, 'p.yaml'),
    (e: Error) =>
      e instanceof ConfigError && /p\.yaml: unknown key 'image\.sise' \(did you mean 'image\.size'\?\)/.test(e.message),
  );
  assert.throws(
    () => resolvePipeline({ ...base, image: { resize_mode: 'crop' } }, 'p.yaml'),
    /'image\.resize_mode' must be one of center_crop/,
  );
  assert.throws(
    () => resolvePipeline({ ...base, samples_per_shard: 'many' }, 'p.yaml'),
    /'samples_per_shard' must be a number/,
  );
  assert.throws(() => resolvePipeline({ input: { url_col: 'URL' } }, 'p.yaml'), /no input files/);
  assert.throws(
    () => resolvePipeline({ input: { files: ['a.tsv'], format: 'tsv', header: false } }, 'p.yaml'),
    /needs input\.columns/,
  );
  assert.throws(
    () => resolvePipeline({ ...base, filters: { metadata: [{ name: 'x', colum: 'y' }] } }, 'p.yaml'),
    /unknown key 'filters\.metadata\[0\]\.colum' \(did you mean 'column'\?\)/,
  );
});

test('command-line flags override the pipeline file', async () => {
  const file = path.join(root, 'pipelines', 'cc12m.yaml');
  const raw = await loadPipelineFile(file);
  const over = flagsToOverrides({
    'image-size': 512,
    'resize-mode': 'keep_ratio',
    'dead-links': 'skip',
    'allow-private-network': true,
    'disallowed-header-directives': '',
  });
  const cfg = resolvePipeline(deepMerge(raw, over), file);
  assert.equal(cfg.image.size, 512);
  assert.equal(cfg.image.resize_mode, 'keep_ratio');
  assert.equal(cfg.image.encode_quality, 95, 'untouched keys keep the file value');
  assert.equal(cfg.dead_links, 'skip');
  assert.equal(cfg.download.allow_private_network, true);
  assert.deepEqual(cfg.download.disallowed_header_directives, []);
  assert.deepEqual(cfg.input.columns, ['url', 'caption']);
});

test('shard selection', () => {
  assert.deepEqual(parseShardSelection(undefined, 3), [0, 1, 2]);
  assert.deepEqual(parseShardSelection('0-2,5,4', 10), [0, 1, 2, 4, 5]);
  assert.throws(() => parseShardSelection('3-12', 10), /shard 12 does not exist; the input has 10 shard/);
  assert.throws(() => parseShardSelection('a', 10), /cannot read 'a'/);
});
