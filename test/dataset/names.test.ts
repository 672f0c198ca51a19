/**
 * Dataset names: a fetched dataset is named after its output folder (or `--name`), names are unique in the
 * index (a second folder with a taken name is refused before anything is written), and an index that holds
 * several datasets under one name (older fetches named every `--input` dataset `custom`) is migrated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { indexPath, openIndex } from '../../src/index-db/db.ts';
import { MIGRATIONS } from '../../src/index-db/schema.ts';
import { resolveDatasets } from '../../src/optout/apply.ts';
import { readDatasetJson } from '../../src/dataset/dataset-json.ts';
import { runInProcess } from '../helpers/cli-in-process.ts';

const tmp = () => mkdtemp(path.join(os.tmpdir(), 'muse-names-'));

/** Metadata whose rows fail before any network call: fetch registers the dataset and writes its shard. */
async function junkInput(dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(
    file,
    ['{"url": "not a url", "caption": "a"}', '{"url": "also not", "caption": "b"}'].join('\n') + '\n',
  );
  return file;
}

const fetch = (input: string, root: string, ...flags: string[]) =>
  runInProcess('muse-data', [
    'fetch',
    '--input',
    input,
    '--input-format',
    'jsonl',
    '--data-root',
    root,
    '--log-format',
    'plain',
    '--dead-links',
    'skip',
    ...flags,
  ]);

test('fetch --input names each dataset after its folder or --name; a taken name is refused naming the other folder', async () => {
  const dir = await tmp();
  const root = path.join(dir, 'root');
  const input = await junkInput(dir, 'shots.jsonl');
  // exit 1: no row was fetched, but the datasets are made and registered
  for (const out of ['alpha', 'beta']) assert.equal((await fetch(input, root, '--out', path.join(dir, out))).status, 1);
  const byDefault = await fetch(input, root); // no --out: <data root>/<input file's name>
  assert.equal(byDefault.status, 1, byDefault.stderr);
  const named = await fetch(input, root, '--out', path.join(dir, 'gamma'), '--name', 'portraits');
  assert.equal(named.status, 1, named.stderr);

  const index = openIndex(root);
  try {
    const rows = index.datasets().map((d) => [d.name, d.path]);
    assert.deepEqual(rows, [
      ['alpha', path.join(dir, 'alpha')],
      ['beta', path.join(dir, 'beta')],
      ['portraits', path.join(dir, 'gamma')],
      ['shots', path.join(root, 'shots')],
    ]);
    assert.deepEqual(
      resolveDatasets(index, ['beta']).map((d) => d.path),
      [path.join(dir, 'beta')],
    );
  } finally {
    index.close();
  }
  assert.equal(readDatasetJson(path.join(dir, 'gamma'))?.name, 'portraits');

  // The same name for another folder: refused, naming the folder that has it; nothing is written.
  const clash = await fetch(input, root, '--out', path.join(dir, 'delta'), '--name', 'alpha');
  assert.equal(clash.status, 1);
  assert.match(clash.stderr, new RegExp(`dataset name 'alpha' is already taken by ${path.join(dir, 'alpha')}`));
  assert.ok(!existsSync(path.join(dir, 'delta')), 'a refused fetch writes nothing');
  const sameFolder = await fetch(input, root, '--out', path.join(dir, 'alpha', '..', 'x', '..', 'alpha'));
  assert.equal(sameFolder.status, 1);
  assert.doesNotMatch(sameFolder.stderr, /taken/, 'the same folder again is the same dataset');
  // A folder keeps its name: --name with another one is refused.
  const rename = await fetch(input, root, '--out', path.join(dir, 'alpha'), '--name', 'omega');
  assert.match(rename.stderr, /is registered as dataset 'alpha'.*--name alpha/);
  const badName = await fetch(input, root, '--name', 'a/b');
  assert.match(badName.stderr, /--name "a\/b": a dataset name is letters, digits/);
});

test('an index with several datasets under one name is migrated to unique names', async () => {
  const root = await tmp();
  // An index as older versions left it: schema version 2, three `--input` datasets all named `custom`.
  const db = new Database(indexPath(root));
  for (let i = 0; i < 2; i++) db.exec(MIGRATIONS[i]);
  db.pragma('user_version = 2');
  const ins = db.prepare("INSERT INTO datasets(name, path, registered) VALUES (?, ?, '2026-01-01')");
  ins.run('custom', '/data/run1/shots');
  ins.run('sample', '/data/sample');
  ins.run('custom', '/data/run2/portraits');
  ins.run('custom', '/data/run3/shots');
  ins.run('shots-3', '/data/other');
  db.close();
  const index = openIndex(root);
  try {
    const names = Object.fromEntries(index.datasets().map((d) => [d.path, d.name]));
    assert.deepEqual(names, {
      '/data/run1/shots': 'shots',
      '/data/sample': 'sample',
      '/data/run2/portraits': 'portraits',
      '/data/run3/shots': 'shots-4',
      '/data/other': 'shots-3',
    });
    assert.throws(
      () => index.registerDataset('portraits', '/data/elsewhere'),
      /already taken by \/data\/run2\/portraits/,
    );
    assert.equal(index.registerDataset('custom', '/data/run1/shots'), 1, 'a registered folder keeps its id and name');
  } finally {
    index.close();
  }
});
