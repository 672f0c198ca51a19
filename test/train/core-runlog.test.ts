import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { JsonlLog, ProgressLine, readJsonl } from '../../src/train/core/run-log.ts';

const tmpFile = async (name: string) => path.join(await mkdtemp(path.join(os.tmpdir(), 'train-core-log-')), name);

test('JsonlLog appends lines and resumes without duplicate steps or partial lines', async () => {
  const file = await tmpFile('log.jsonl');
  const log = await JsonlLog.open(file);
  for (let step = 1; step <= 5; step++) log.write({ step, loss: 1 / step });
  log.write({ event: 'eval' });
  await log.close();
  assert.throws(() => log.write({ step: 6 }), /write after close/);
  assert.deepEqual(
    (await readJsonl(file)).map((r) => r.step),
    [1, 2, 3, 4, 5, undefined],
  );
  // a crash mid-write leaves half a line
  await writeFile(file, (await readFile(file, 'utf8')) + '{"step": 6, "lo');
  assert.equal((await readJsonl(file)).length, 6, 'readJsonl ignores the partial line');
  // resume from a checkpoint at step 3: steps 4, 5 (and the partial 6) go, the step-less record stays
  const again = await JsonlLog.open(file, { truncateAfterStep: 3 });
  again.write({ step: 4, loss: 0.2 });
  await again.close();
  const rows = await readJsonl(file);
  assert.deepEqual(
    rows.map((r) => r.step),
    [1, 2, 3, undefined, 4],
  );
  assert.equal(rows[4].loss, 0.2);
  assert.ok((await readFile(file, 'utf8')).endsWith('}\n'));
  await writeFile(file, '{"step":1}\nnot json\n');
  await assert.rejects(readJsonl(file), /log\.jsonl:2: not valid JSON/);
  await assert.rejects(readJsonl(file + '.nope'), /no such file/);
});

test('ProgressLine rewrites on a TTY and throttles otherwise', () => {
  const ttyOut: string[] = [];
  const tty = new ProgressLine({ isTTY: true, write: (s: string) => ttyOut.push(s) });
  tty.update('step 1');
  tty.update('step 2');
  tty.done('finished');
  assert.deepEqual(ttyOut, ['\r\x1b[2Kstep 1', '\r\x1b[2Kstep 2', '\r\x1b[2Kfinished\n']);

  const out: string[] = [];
  let clock = 0;
  const p = new ProgressLine({ write: (s: string) => out.push(s) }, { minIntervalMs: 1000, now: () => clock });
  p.update('a'); // first one always prints
  clock = 500;
  p.update('b');
  clock = 999;
  p.update('c');
  clock = 1000;
  p.update('d');
  clock = 1200;
  p.update('e');
  p.done(); // the last unshown update
  assert.deepEqual(out, ['a\n', 'd\n', 'e\n']);
});
