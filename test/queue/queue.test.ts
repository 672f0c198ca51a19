/**
 * Shard jobs through BullMQ on a real redis-server (loopback, free port): workers are `muse-data worker`
 * processes, the parent runs in this process. Results must be byte-identical to a single-process run whatever
 * happens to the workers or to Redis.
 */
import { urlHash } from '../../src/optout/normalize-url.ts';
import { withSampleIndex } from '../../src/dataset/sample-index.ts';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Queue } from 'bullmq';
import { deepMerge, loadPipelineFile, resolvePipeline } from '../../src/pipeline/config.ts';
import { runFetch } from '../../src/pipeline/run-fetch.ts';
import type { PipelineConfig } from '../../src/pipeline/config-types.ts';
import { readManifest } from '../../src/dataset/manifest.ts';
import { openIndex } from '../../src/index-db/db.ts';
import { fetchThroughQueue, type QueueFetchOptions } from '../../src/queue/fetch-through-queue.ts';
import { tokenizeThroughQueue } from '../../src/queue/tokenize-through-queue.ts';
import { parseQueueUrl, QueueError } from '../../src/queue/connection.ts';
import { bullConnection } from '../../src/queue/connection.ts';
import { FETCH_QUEUE, QUEUE_PREFIX } from '../../src/queue/jobs.ts';
import { shardModulo } from '../../src/cli/queue-flags.ts';
import { initBackend } from '../../src/runtime/backend.ts';
import { runWorker } from '../../src/queue/worker.ts';
import { runTokenize } from '../../src/tokenize/run-tokenize.ts';
import { freePort, startRedis, type TestRedis } from '../helpers/redis.ts';
import { skipUnlessAvailable } from '../helpers/system-component.ts';
import { runCli } from '../helpers/cli.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = (p: string) => mkdtemp(path.join(os.tmpdir(), `muse-q-${p}-`));
const quiet = () => {};

let redis: TestRedis;
// redis-server is Debian's package (.ci/run installs it): without it these tests are skipped, said so, except in CI.
const skip = skipUnlessAvailable(
  'redis-server',
  spawnSync('redis-server', ['--version']).status === 0 ? undefined : 'redis-server is not installed',
  'apt-get install redis-server',
);
let reference: string; // the sample, 50 rows per shard, fetched in one process
const sample = async (): Promise<PipelineConfig> => {
  const file = path.join(root, 'pipelines', 'sample.yaml');
  return resolvePipeline(deepMerge(await loadPipelineFile(file), { samples_per_shard: 50 }), file);
};

async function shardFiles(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const f of (await readdir(path.join(dir, 'shards'))).sort()) {
    if (f.endsWith('.tar') || f.endsWith('.arrow')) files.set(f, await readFile(path.join(dir, 'shards', f)));
  }
  return files;
}

interface WorkerProc {
  child: ChildProcess;
  log: () => string;
  /** Resolves once the worker has logged a line matching `re`. */
  waitFor(re: RegExp): Promise<void>;
  exited: Promise<number | null>;
}

function startWorker(dataRoot: string, extra: string[] = []): WorkerProc {
  let out = '';
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const run = runCli(
    'muse-data',
    [
      'worker',
      '--queue',
      redis.url,
      '--data-root',
      dataRoot,
      '--lock-duration',
      '5',
      '--stalled-interval',
      '1',
      ...extra,
    ],
    {
      onStderr: (text) => {
        out = text;
        for (const w of [...waiters])
          if (w.re.test(out)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
      },
    },
  );
  const exited = run.then((r) => r.code);
  return {
    child: run.child,
    log: () => out,
    waitFor: (re) => (re.test(out) ? Promise.resolve() : new Promise((resolve) => waiters.push({ re, resolve }))),
    exited,
  };
}

/** SIGTERM: a worker finishes what it holds and exits 0. */
async function stopWorkers(ws: WorkerProc[]): Promise<void> {
  for (const w of ws) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  for (const w of ws) {
    const code = await w.exited;
    if (w.child.signalCode !== 'SIGKILL') assert.equal(code, 0, `worker exited ${code}: ${w.log()}`);
  }
}

const viaQueue = (cfg: PipelineConfig, out: string, extra: Partial<QueueFetchOptions> = {}) =>
  fetchThroughQueue({
    cfg,
    datasetDir: out,
    dataRoot: path.join(out, 'root'),
    projectRoot: root,
    logFormat: 'json',
    queueUrl: redis.url,
    pollMs: 200,
    ...extra,
  });

before(async () => {
  if (skip) return;
  redis = await startRedis();
  reference = await tmp('ref');
  const s = await runFetch({
    cfg: await sample(),
    datasetDir: reference,
    dataRoot: path.join(reference, 'root'),
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
  });
  assert.deepEqual(s.shards_failed, []);
});

after(async () => {
  await redis?.stop();
});

for (const n of [2, 3]) {
  test(
    `${n} workers through the queue: shards byte-identical to one process; the parent records the samples`,
    { skip },
    async () => {
      const out = await tmp(`w${n}`);
      const workerRoot = path.join(out, 'worker-root');
      const workers = Array.from({ length: n }, () => startWorker(workerRoot, ['--concurrency', '1']));
      try {
        const summary = await viaQueue(await sample(), out);
        assert.deepEqual(summary.shards_failed, []);
        assert.equal(summary.shards_run, 6);
        assert.deepEqual(await shardFiles(out), await shardFiles(reference));
      } finally {
        await stopWorkers(workers);
      }
      // every worker took part, and none wrote to an index of its own: each wrote its shards' index runs
      const took = workers.filter((w) => /fetch shard \d+ done/.test(w.log())).length;
      assert.ok(took >= 2, `${took} of ${n} workers ran shards`);
      assert.equal(existsSync(path.join(workerRoot, 'index.sqlite')), false);
      const rows = await readManifest(path.join(out, 'shards', '00003.arrow'));
      const okRow = rows.find((r) => r.status === 'ok')!;
      const index = openIndex(path.join(out, 'root'), { readonly: true });
      try {
        const refs = await withSampleIndex(index, (s) => s.samplesByUrlHash(urlHash(okRow.url)));
        assert.deepEqual(
          refs.map((r) => [r.key, r.datasetPath]),
          [[okRow.key, out]],
        );
      } finally {
        index.close();
      }
      // enqueueing the same run again adds nothing: every shard is complete on disk
      const again = await viaQueue(await sample(), out);
      assert.equal(again.shards_skipped, 6);
    },
  );
}

test(
  'a worker killed with kill -9 mid-shard: another takes the shard over, identical bytes, no tmp files',
  { skip },
  async () => {
    const out = await tmp('kill');
    const root2 = path.join(out, 'worker-root');
    const victim = startWorker(root2, ['--concurrency', '2']);
    const other = startWorker(root2, ['--concurrency', '1']);
    try {
      const run = viaQueue(await sample(), out);
      await victim.waitFor(/fetch shard \d+ started/);
      const delay = Math.floor(Math.random() * 1200);
      await new Promise((r) => setTimeout(r, delay));
      victim.child.kill('SIGKILL');
      const summary = await run;
      assert.deepEqual(summary.shards_failed, [], `killed after ${delay} ms`);
      assert.deepEqual(await shardFiles(out), await shardFiles(reference), `killed after ${delay} ms`);
      const left = await readdir(path.join(out, 'shards'));
      assert.deepEqual(
        left.filter((f) => f.endsWith('.tmp')),
        [],
        'no temporary files left',
      );
      assert.equal(left.filter((f) => f.endsWith('_stats.json')).length, 6);
    } finally {
      victim.child.kill('SIGKILL');
      await stopWorkers([other]);
    }
  },
);

test('SIGTERM mid-shard: the worker finishes the shard in hand, takes no more, exits 0', { skip }, async () => {
  const out = await tmp('term');
  const first = startWorker(path.join(out, 'wr'), ['--concurrency', '1']);
  let second: WorkerProc | undefined;
  try {
    const run = viaQueue(await sample(), out);
    await first.waitFor(/fetch shard \d+ started/);
    const shard = /fetch shard (\d+) started/.exec(first.log())![1];
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0, first.log());
    const log = first.log();
    assert.match(log, new RegExp(`fetch shard ${shard} done[^]*stopped`));
    assert.equal((log.match(/started \(job/g) ?? []).length, 1, `took more shards after SIGTERM:\n${log}`);
    second = startWorker(path.join(out, 'wr'));
    const summary = await run;
    assert.deepEqual(summary.shards_failed, []);
    assert.deepEqual(await shardFiles(out), await shardFiles(reference));
  } finally {
    await stopWorkers(second ? [first, second] : [first]);
  }
});

test(
  'Redis restarted mid-run: the queue persists (AOF) and the run completes with identical bytes',
  { skip },
  async () => {
    const out = await tmp('restart');
    const workers = [
      startWorker(path.join(out, 'wr'), ['--concurrency', '1']),
      startWorker(path.join(out, 'wr'), ['--concurrency', '1']),
    ];
    try {
      // both connected before Redis goes away (a worker that cannot reach Redis at start exits with an error)
      await Promise.all(workers.map((w) => w.waitFor(/taking fetch/)));
      const run = viaQueue(await sample(), out);
      await workers[0].waitFor(/fetch shard \d+ started/);
      await redis.restart(700);
      const summary = await run;
      assert.deepEqual(summary.shards_failed, []);
      assert.deepEqual(await shardFiles(out), await shardFiles(reference));
    } finally {
      await stopWorkers(workers);
    }
  },
);

test(
  'Redis restarted with its data lost mid-run: the parent enqueues again what is not on disk; identical bytes',
  { skip },
  async () => {
    const out = await tmp('wiped');
    const workers = [
      startWorker(path.join(out, 'wr'), ['--concurrency', '1']),
      startWorker(path.join(out, 'wr'), ['--concurrency', '1']),
    ];
    try {
      await Promise.all(workers.map((w) => w.waitFor(/taking fetch/)));
      const run = viaQueue(await sample(), out);
      await workers[0].waitFor(/fetch shard \d+ started/);
      await redis.restart(300, { wipe: true });
      const summary = await run;
      assert.deepEqual(summary.shards_failed, []);
      assert.deepEqual(await shardFiles(out), await shardFiles(reference));
    } finally {
      await stopWorkers(workers);
    }
  },
);

/** /img/<n>.jpg: a 300x200 JPEG. */
async function imageServer(): Promise<{ origin: string; close: () => Promise<void> }> {
  const jpg = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 20, g: 90, b: 200 } } })
    .jpeg()
    .toBuffer();
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/img/')) res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpg);
    else res.writeHead(404).end('no');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

test(
  'a job the worker cannot read fails with the reason, after bounded retries; shown by queue status; a rerun redoes it',
  { skip },
  async () => {
    const out = await tmp('bad');
    const server = await imageServer();
    const workerRoot = path.join(out, 'worker-root');
    const worker = startWorker(workerRoot);
    try {
      // The metadata is under the parent's data root only: the worker's ${data_root} has no such file.
      await mkdir(path.join(out, 'root'), { recursive: true });
      await writeFile(
        path.join(out, 'root', 'meta.tsv'),
        Array.from({ length: 6 }, (_, i) => `${server.origin}/img/${i}.jpg\ta blue picture number ${i}`).join('\n') +
          '\n',
      );
      const cfg = resolvePipeline(
        {
          name: 'tsvq',
          input: {
            files: ['${data_root}/meta.tsv'],
            format: 'tsv',
            header: false,
            columns: ['url', 'caption'],
            url_col: 'url',
            caption_col: 'caption',
          },
          image: { size: 32 },
          download: { allow_private_network: true, retries: 0 },
          samples_per_shard: 3,
        },
        'test',
      );
      const summary = await viaQueue(cfg, out, { retry: { attempts: 2, backoffMs: 100 } });
      assert.deepEqual(
        summary.shards_failed.map((f) => f.shard),
        [0, 1],
      );
      for (const f of summary.shards_failed) assert.match(f.error, /meta\.tsv.*\(after 2 attempt\(s\)\)/s);
      assert.equal(existsSync(path.join(out, 'shards', '00000_stats.json')), false);

      // A job of a format this worker does not know fails at once, without retries.
      const q = new Queue(FETCH_QUEUE, { connection: bullConnection(parseQueueUrl(redis.url)), prefix: QUEUE_PREFIX });
      await q.add('future', { kind: 'fetch', format: 99, shard: 0 }, { jobId: 'future-job', attempts: 3 });
      await worker.waitFor(/fetch shard 0 failed: job future-job/);
      await q.close();

      const status = await runCli('muse-data', ['queue', 'status', '--queue', redis.url]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /failed +shard 1 of .*after 2 attempt\(s\): .*meta\.tsv/);
      assert.match(
        status.stdout,
        /failed +shard 0 of \? after 1 attempt\(s\): .*format 99.*reads fetch jobs of format 1/,
      );

      // With the file in place on the worker's machine, `queue retry-failed` sends the failed jobs round again
      // (the future-format one fails again at once), and a rerun of the same fetch waits for them.
      await mkdir(workerRoot, { recursive: true });
      await writeFile(path.join(workerRoot, 'meta.tsv'), await readFile(path.join(out, 'root', 'meta.tsv')));
      const retried = await runCli('muse-data', ['queue', 'retry-failed', '--queue', redis.url]);
      assert.match(retried.stdout, /^3 failed job\(s\) back in the queue/, retried.stderr);
      const rerun = await viaQueue(cfg, out, { retry: { attempts: 2, backoffMs: 100 } });
      assert.deepEqual(rerun.shards_failed, []);
      assert.equal(rerun.status.ok, 6);
      const cleaned = await runCli('muse-data', ['queue', 'clean', '--queue', redis.url]);
      assert.match(cleaned.stdout, /[1-9]\d* job\(s\) removed/);
    } finally {
      await stopWorkers([worker]);
      await server.close();
    }
  },
);

test('an unreachable --queue URL is a clear error within seconds', { skip }, async () => {
  const dead = `redis://127.0.0.1:${await freePort()}`;
  const out = await tmp('dead');
  const message = new RegExp(`--queue ${dead}: cannot reach Redis`);
  // in this process: the time of the check itself
  for (const attempt of [
    () => viaQueue({} as PipelineConfig, out, { queueUrl: dead }),
    () => runWorker({ queueUrl: dead, concurrency: 1, dataRoot: out, projectRoot: root, kinds: ['fetch'], log: quiet }),
  ]) {
    const t = Date.now();
    await assert.rejects(attempt(), message);
    assert.ok(Date.now() - t < 5000, `took ${Date.now() - t} ms`);
  }
  // the command lines: message and exit code (their time includes starting node, slow on a loaded machine)
  for (const args of [
    ['fetch', 'sample', '--queue', dead, '--out', out, '--data-root', path.join(out, 'root')],
    ['worker', '--queue', dead],
    ['queue', 'status', '--queue', dead],
  ]) {
    const r = await runCli('muse-data', args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, message);
    assert.ok(r.ms < 30_000, `${args[0]} took ${r.ms} ms`);
  }
  assert.throws(() => parseQueueUrl('http://127.0.0.1:6379'), QueueError);
  assert.throws(() => parseQueueUrl('redis://127.0.0.1:6379/x'), /database 'x'/);
  assert.deepEqual(parseQueueUrl('redis://h:7000/2'), {
    url: 'redis://h:7000/2',
    host: 'h',
    port: 7000,
    db: 2,
    username: undefined,
    password: undefined,
  });
});

test('--shard-index I --shard-count N: shards i = I mod N; the N tasks together equal one run', { skip }, async () => {
  const out = await tmp('modulo');
  const cfg = await sample();
  const first = await runFetch({
    cfg,
    datasetDir: out,
    dataRoot: path.join(out, 'root'),
    projectRoot: root,
    workers: 1,
    logFormat: 'json',
    shardModulo: { index: 1, count: 4 },
  });
  assert.equal(first.shards_selected, 2); // shards 1 and 5
  assert.deepEqual(
    (await readdir(path.join(out, 'shards'))).filter((f) => f.endsWith('_stats.json')),
    ['00001_stats.json', '00005_stats.json'],
  );
  for (const index of [0, 2, 3])
    await runFetch({
      cfg,
      datasetDir: out,
      dataRoot: path.join(out, 'root'),
      projectRoot: root,
      workers: 1,
      logFormat: 'json',
      shardModulo: { index, count: 4 },
    });
  assert.deepEqual(await shardFiles(out), await shardFiles(reference));
  assert.deepEqual(shardModulo({ 'shard-index': 2, 'shard-count': 3 }), { index: 2, count: 3 });
  assert.throws(() => shardModulo({ 'shard-index': 3, 'shard-count': 3 }), /--shard-index: expected an integer in 0-2/);
  assert.throws(() => shardModulo({ 'shard-index': 0 }), /go together/);
  assert.throws(() => shardModulo({ 'shard-index': 0, 'shard-count': 2, queue: 'redis://x' }), /without a queue/);
});

test(
  'a queued fetch plans as a local one: --shard-index/--shard-count and --shards pick the same shards',
  { skip },
  async () => {
    const out = await tmp('qmodulo');
    const cfg = await sample();
    const workers = [startWorker(path.join(out, 'worker-root'), ['--concurrency', '1'])];
    try {
      const first = await viaQueue(cfg, out, { shardModulo: { index: 1, count: 4 } });
      assert.deepEqual([first.shards_selected, first.shards_run, first.shards_failed], [2, 2, []]); // shards 1 and 5
      assert.deepEqual(
        (await readdir(path.join(out, 'shards'))).filter((f) => f.endsWith('_stats.json')),
        ['00001_stats.json', '00005_stats.json'],
      );
      const second = await viaQueue(cfg, out, { shards: '0-4', shardModulo: { index: 1, count: 2 } });
      assert.deepEqual([second.shards_selected, second.shards_run, second.shards_skipped], [2, 1, 1]); // 1 (done) and 3
      for (const index of [0, 2, 3])
        assert.deepEqual((await viaQueue(cfg, out, { shardModulo: { index, count: 4 } })).shards_failed, []);
    } finally {
      await stopWorkers(workers);
    }
    assert.deepEqual(await shardFiles(out), await shardFiles(reference));
    await assert.rejects(
      viaQueue(cfg, out, { retryStatuses: ['failed'] } as Partial<QueueFetchOptions>),
      /--retry-status .* does not go with --queue/,
    );
  },
);

test(
  'tokenize through the queue: cache files byte-identical to a local tokenize, manifests written by the parent',
  { skip },
  async () => {
    await initBackend('wasm', { quiet: true });
    const local = await tmp('tok-local');
    const queued = await tmp('tok-queue');
    // two copies of the reference shards
    for (const dir of [local, queued]) {
      await mkdir(path.join(dir, 'shards'), { recursive: true });
      for (const f of await readdir(path.join(reference, 'shards')))
        await writeFile(path.join(dir, 'shards', f), await readFile(path.join(reference, 'shards', f)));
    }
    const opts = { text: ['byt5-tiny'], batch: 8, includeFallbacks: false, shards: [0, 1, 2], log: quiet };
    const want = await runTokenize({ ...opts, datasetDir: local });
    const workers = [
      startWorker(path.join(queued, 'wr'), ['--kinds', 'tokenize']),
      startWorker(path.join(queued, 'wr'), ['--kinds', 'tokenize']),
    ];
    try {
      const got = await tokenizeThroughQueue({ ...opts, datasetDir: queued, queueUrl: redis.url, pollMs: 200 });
      assert.deepEqual(got.shards_done, [0, 1, 2]);
      assert.equal(got.samples, want.samples);
    } finally {
      await stopWorkers(workers);
    }
    for (const [kind, id] of [
      ['tokens', want.vq_id],
      ['text', want.text_ids[0]],
    ]) {
      const files = (await readdir(path.join(local, kind, id))).sort();
      assert.deepEqual((await readdir(path.join(queued, kind, id))).sort(), files);
      for (const f of files) {
        const a = await readFile(path.join(local, kind, id, f));
        const b = await readFile(path.join(queued, kind, id, f));
        if (f === 'manifest.json') {
          const strip = (m: Buffer) => ({ ...JSON.parse(m.toString()), created: null });
          assert.deepEqual(strip(b), strip(a));
        } else assert.ok(a.equals(b), `${kind}/${id}/${f} differs`);
      }
    }
  },
);
