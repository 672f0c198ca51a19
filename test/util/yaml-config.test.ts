/** The YAML config core (src/util/yaml-config.ts) shared by pipeline files and training configs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, deepMerge, parseYamlMapping, unknownKeyError } from '../../src/util/yaml-config.ts';
import { ConfigError as PipelineConfigError, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { ConfigError as TrainConfigError, loadTrainConfig } from '../../src/train/config/load.ts';

const configsDir = path.resolve(import.meta.dirname, '../..', 'configs');

test('core: mapping, merge, unknown key with suggestion', () => {
  assert.deepEqual(parseYamlMapping('a: 1\nb: {c: 2}\n', 'f.yaml'), { a: 1, b: { c: 2 } });
  assert.throws(
    () => parseYamlMapping('a: [1, 2\n', 'f.yaml'),
    (e: Error) => e instanceof ConfigError && /^f\.yaml: not valid YAML \(/.test(e.message),
  );
  assert.throws(() => parseYamlMapping('- 1\n', 'f.yaml', 'of sections'), /f\.yaml: expected a mapping of sections/);
  assert.deepEqual(deepMerge({ a: { b: 1, c: 2 }, d: [1] }, { a: { c: 3 }, d: [2], e: undefined }), {
    a: { b: 1, c: 3 },
    d: [2],
  });
  assert.equal(
    unknownKeyError('f.yaml', 'image.sise', ['size', 'resize_mode']).message,
    "f.yaml: unknown key 'image.sise' (did you mean 'image.size'?)",
  );
  assert.equal(unknownKeyError('f.yaml', 'zzz', ['size']).message, "f.yaml: unknown key 'zzz'");
});

test('pipeline files and training configs raise the same errors through the core', async () => {
  assert.equal(PipelineConfigError, ConfigError);
  assert.equal(TrainConfigError, ConfigError);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'muse-yaml-'));
  const bad = path.join(dir, 'bad.yaml');
  await writeFile(bad, 'image: [1, 2\n');
  await assert.rejects(
    loadPipelineFile(bad),
    (e: Error) => e instanceof ConfigError && e.message.startsWith(`${bad}: not valid YAML (`),
  );
  assert.throws(
    () => loadTrainConfig({ file: bad, configsDir }),
    (e: Error) => e instanceof ConfigError && e.message.startsWith(`${bad}: not valid YAML (`),
  );
  const typo = path.join(dir, 'typo.yaml');
  await writeFile(typo, 'training:\n  max_step: 3\n');
  assert.throws(
    () => loadTrainConfig({ file: typo, configsDir }),
    /unknown key 'training\.max_step' \(did you mean 'training\.max_steps'\?\)/,
  );
  assert.throws(
    () => resolvePipeline({ input: { files: ['x'] }, image: { sise: 3 } }, 'p.yaml'),
    /p\.yaml: unknown key 'image\.sise' \(did you mean 'image\.size'\?\)/,
  );
});
