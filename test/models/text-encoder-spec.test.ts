// parseTextEncoderSpec, the one parser of a text-encoder spec, and the places that read one through it: the
// training config, the text cache lookup, the queue's job payload, and the sampling.json form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  absoluteTextEncoderSpec,
  BYT5_TINY_ID,
  parseTextEncoderSpec,
  textEncoderSpecs,
} from '../../src/models/text/encoders.ts';
import { loadTrainConfig } from '../../src/train/config/load.ts';
import { resolveTextCacheId } from '../../src/train/muse/cache-ids.ts';
import { jobModelSpecs } from '../../src/queue/tokenize-through-queue.ts';

const configsDir = path.resolve(import.meta.dirname, '../../configs');

test('parseTextEncoderSpec: the built-in by either name, t5:DIR, clip:DIR; anything else is a clear error', () => {
  assert.deepEqual(parseTextEncoderSpec('byt5-tiny'), { kind: 'builtin' });
  assert.deepEqual(parseTextEncoderSpec(BYT5_TINY_ID), { kind: 'builtin' });
  assert.deepEqual(parseTextEncoderSpec(' t5:models/t5 '), { kind: 't5', dir: 'models/t5' });
  assert.deepEqual(parseTextEncoderSpec('clip:/abs/c:lip'), { kind: 'clip', dir: '/abs/c:lip' });
  assert.throws(() => parseTextEncoderSpec('byt5-tiny-seed0'), /replaced by 'byt5-tiny'/);
  for (const bad of ['', 'models/t5', 't5:', 'bert:models/b', 'T5:models/t5']) {
    assert.throws(
      () => parseTextEncoderSpec(bad),
      new RegExp(`unknown text encoder '${bad}'.*expected byt5-tiny, t5:DIR or clip:DIR`),
      bad,
    );
  }
});

test('textEncoderSpecs splits a comma list; absoluteTextEncoderSpec keeps built-ins as names and resolves folders', () => {
  assert.deepEqual(textEncoderSpecs(' t5:a , clip:b ,'), ['t5:a', 'clip:b']);
  assert.equal(absoluteTextEncoderSpec('byt5-tiny'), 'byt5-tiny');
  assert.equal(absoluteTextEncoderSpec(BYT5_TINY_ID), BYT5_TINY_ID);
  assert.equal(
    absoluteTextEncoderSpec('t5:models/t5,clip:models/clip'),
    `t5:${path.resolve('models/t5')},clip:${path.resolve('models/clip')}`,
  );
  assert.throws(() => absoluteTextEncoderSpec('models/t5'), /unknown text encoder 'models\/t5'/);
});

test('every reader of a text-encoder spec goes through the one parser', async () => {
  // The queue's job payload: a built-in stays a name, a folder becomes absolute, a bad spec fails in the parent.
  assert.deepEqual(jobModelSpecs(undefined, ['byt5-tiny', BYT5_TINY_ID, 'clip:m/c']).text, [
    'byt5-tiny',
    BYT5_TINY_ID,
    `clip:${path.resolve('m/c')}`,
  ]);
  assert.throws(() => jobModelSpecs(undefined, ['bert:m']), /unknown text encoder 'bert:m'/);
  // The training config: a bad spec is named with its key before any run starts.
  const load = (spec: string) => loadTrainConfig({ stage: 'tiny', configsDir, sets: [`model.text_encoder=${spec}`] });
  assert.throws(() => load('bert:m'), /model.text_encoder.*unknown text encoder 'bert:m'/);
  assert.throws(() => load('t5:a,bert:m'), /model.text_encoder.*unknown text encoder 'bert:m'/);
  assert.throws(() => load('t5:a,t5:b'), /model.text_encoder.*one T5.*and one CLIP/);
  assert.equal(load(`${BYT5_TINY_ID},clip:c`).model.text_encoder, `${BYT5_TINY_ID},clip:c`);
  // The text cache lookup: the built-in's id names its cache whichever way it is spelled.
  await assert.rejects(resolveTextCacheId('/nonexistent-dataset', 'bert:m', null), /unknown text encoder 'bert:m'/);
  await assert.rejects(
    resolveTextCacheId('/nonexistent-dataset', BYT5_TINY_ID, null),
    /no text cache made with byt5-tiny-local-seed0/,
  );
});
