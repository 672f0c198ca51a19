// One list per closed set: the pipeline schema, the training schema, the CLI choices and the readers' errors all
// take their values from the list's owner, so a value added there is accepted everywhere and a value that is
// not listed is refused everywhere with the same list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import yargs from 'yargs';
import { fetchCommand } from '../../src/cli/fetch-command.ts';
import { workerHandler } from '../../src/cli/worker-command.ts';
import { deepMerge, resolvePipeline } from '../../src/pipeline/config.ts';
import { DEAD_LINK_MODES } from '../../src/pipeline/config-types.ts';
import { LOG_FORMATS } from '../../src/pipeline/progress.ts';
import { INPUT_FORMATS, createSource } from '../../src/sources/index.ts';
import { ENCODE_FORMATS } from '../../src/image/encode.ts';
import { RESIZE_MODES } from '../../src/image/geometry.ts';
import { PERSON_TOKEN_MODES } from '../../src/filters/person-token.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { FID_RESIZES } from '../../src/eval/fid/resize.ts';
import { LR_SCHEDULES } from '../../src/train/core/lr-schedule.ts';
import { ARCHITECTURES } from '../../src/models/token-model.ts';
import { CODEBOOK_INITS, GAN_LOSS_KINDS, RECONSTRUCTION_KINDS } from '../../src/train/vqgan/losses.ts';
import { QUEUE_NAMES } from '../../src/queue/jobs.ts';
import { quotedChoices } from '../../src/util/suggest.ts';

const configsDir = path.resolve(import.meta.dirname, '../../configs');
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Sets a dotted key in a fresh object. */
function tree(key: string, value: unknown): Record<string, unknown> {
  return key.split('.').reduceRight<unknown>((v, k) => ({ [k]: v }), value) as Record<string, unknown>;
}

test('pipeline files and fetch flags take each closed set from its one list', () => {
  const choices = (
    fetchCommand(yargs([])) as unknown as { getOptions(): { choices: Record<string, readonly string[]> } }
  ).getOptions().choices;
  const sets: Array<[key: string, flag: string | null, list: readonly string[]]> = [
    ['input.format', 'input-format', INPUT_FORMATS],
    ['image.resize_mode', 'resize-mode', RESIZE_MODES],
    ['image.encode_format', 'encode-format', ENCODE_FORMATS],
    ['dead_links', 'dead-links', DEAD_LINK_MODES],
    ['filters.caption.person_token', null, PERSON_TOKEN_MODES],
  ];
  const base = { input: { files: ['x.parquet'], url_col: 'URL' } };
  for (const [key, flag, list] of sets) {
    if (flag) assert.deepEqual(choices[flag], [...list], flag);
    for (const value of list) resolvePipeline(deepMerge(base, tree(key, value)), 'p.yaml');
    assert.throws(
      () => resolvePipeline(deepMerge(base, tree(key, 'nope')), 'p.yaml'),
      new RegExp(`'${escape(key)}' must be one of ${escape(list.join(', '))}, not 'nope'`),
      key,
    );
  }
  assert.deepEqual(choices['log-format'], [...LOG_FORMATS]);
  // The reader checks an input config made without the schema against the same list.
  assert.throws(
    () =>
      createSource(
        { files: ['x'], format: 'xml' as 'csv', header: true, url_col: 'url' },
        { dataRoot: '.', projectRoot: '.' },
      ),
    new RegExp(`unknown format "xml" \\(expected one of ${escape(INPUT_FORMATS.join(', '))}\\)`),
  );
});

test('training configs take each closed set from the list its stage reads', () => {
  const sets: Array<[key: string, list: readonly string[]]> = [
    ['model.architecture', ARCHITECTURES],
    ['lr_scheduler.schedule', LR_SCHEDULES],
    ['vqgan_training.rec_loss', RECONSTRUCTION_KINDS],
    ['vqgan_training.discriminator.loss', GAN_LOSS_KINDS],
    ['vqgan_training.codebook_init', CODEBOOK_INITS],
    ['evaluation.resize', FID_RESIZES],
  ];
  for (const [key, list] of sets) {
    assert.throws(
      () => loadTrainConfig({ stage: 'tiny', configsDir, sets: [`${key}=nope`] }),
      new RegExp(`${escape(key)} must be one of ${escape(list.join(', '))}`),
      key,
    );
  }
  for (const value of RECONSTRUCTION_KINDS)
    assert.equal(
      loadTrainConfig({ stage: 'vqgan', configsDir, sets: [`vqgan_training.rec_loss=${value}`] }).vqgan_training
        .rec_loss,
      value,
    );
});

test('worker --kinds takes the queue names from their one list', async () => {
  await assert.rejects(
    workerHandler({ kinds: 'fetch,tokenise', concurrency: 1 }),
    new RegExp(`--kinds: expected one or more of ${QUEUE_NAMES.join(', ')}`),
  );
  assert.equal(quotedChoices(['a', 'b']), "'a' or 'b'");
  assert.equal(quotedChoices(['a', 'b', 'c']), "'a', 'b' or 'c'");
});
