// The compiled bins (`npm run build` to dist/, what `npm ci` runs through `prepare`): built into a scratch copy of
// the project layout whose node_modules lacks tsx, so every process (the bin, fetch and tokenize workers, the
// opt-out import thread) must run compiled JavaScript; any tsx use would fail to load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

/** A project root with bin/, configs/, pipelines/, datasets/, src/ of this checkout, dist/ freshly built, node_modules minus tsx. */
function scratchInstall(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'muse-build-'));
  // bin/ is copied: Node runs a symlinked main module from its real path, which would be this checkout.
  cpSync(path.join(root, 'bin'), path.join(dir, 'bin'), { recursive: true });
  for (const name of ['configs', 'pipelines', 'datasets', 'src', 'package.json'])
    symlinkSync(path.join(root, name), path.join(dir, name));
  mkdirSync(path.join(dir, 'node_modules'));
  for (const name of readdirSync(path.join(root, 'node_modules'))) {
    if (name === 'tsx' || name === '.bin') continue;
    symlinkSync(path.join(root, 'node_modules', name), path.join(dir, 'node_modules', name));
  }
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const build = spawnSync(
    process.execPath,
    [
      tsc,
      '-p',
      path.join(root, 'tsconfig.build.json'),
      '--outDir',
      path.join(dir, 'dist'),
      '--tsBuildInfoFile',
      path.join(dir, 'dist', '.tsbuildinfo'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(build.status, 0, `the build failed:\n${build.stdout}${build.stderr}`);
  return dir;
}

test(
  'the bins run compiled JavaScript from dist/, workers included, with no tsx installed',
  { timeout: 600_000 },
  () => {
    const dir = scratchInstall();
    try {
      assert.ok(existsSync(path.join(dir, 'dist', 'cli', 'muse-data.js')));
      assert.ok(existsSync(path.join(dir, 'dist', 'pipeline', 'worker.js')), 'fetch worker compiled');
      // Every compiled module loads under plain Node (an import tsx resolves but Node does not, e.g. a package subpath
      // without its .js, fails here), except the entry scripts that act on import.
      const entries = [
        'demo/main.js',
        'sample-data/build-parquet.js',
        'pipeline/worker.js',
        'tokenize/worker.js',
        'optout/import-worker.js',
        'runtime/tensorflow/check-build.js',
      ];
      writeFileSync(
        path.join(dir, 'import-all.mjs'),
        [
          "import { readdirSync } from 'node:fs';",
          "import { pathToFileURL } from 'node:url';",
          `const skip = new Set(${JSON.stringify(entries)});`,
          "const dist = new URL('./dist/', import.meta.url);",
          "const files = readdirSync(dist, { recursive: true }).filter((f) => f.endsWith('.js') && !skip.has(f));",
          'for (const f of files) await import(new URL(f, dist).href);',
          'console.log(files.length);',
        ].join('\n'),
      );
      const all = spawnSync(process.execPath, [path.join(dir, 'import-all.mjs')], { encoding: 'utf8', cwd: dir });
      assert.equal(all.status, 0, all.stderr);
      assert.ok(Number(all.stdout) > 150, `modules imported: ${all.stdout}`);
      for (const e of entries) assert.ok(existsSync(path.join(dir, 'dist', e)), e);

      const run = (bin: string, args: string[]) =>
        spawnSync(process.execPath, [path.join(dir, 'bin', `${bin}.js`), ...args], {
          encoding: 'utf8',
          cwd: dir,
          env: { ...process.env, MUSE_FROM_SOURCE: '' },
        });
      const data = path.join(dir, 'data');

      // fetch: two shards in two worker processes
      const fetch = run('muse-data', [
        'fetch',
        'sample',
        '--shards',
        '0-1',
        '--workers',
        '2',
        '--data-root',
        data,
        '--log-format',
        'plain',
      ]);
      assert.equal(fetch.status, 0, fetch.stderr);
      assert.match(fetch.stderr, /to run with 2 worker\(s\)/);
      for (const s of ['00000', '00001'])
        assert.ok(existsSync(path.join(data, 'sample', 'shards', `${s}_stats.json`)), `shard ${s}`);

      // tokenize: two worker processes on the wasm backend
      const tok = run('muse-data', ['tokenize', 'sample', '--workers', '2', '--backend', 'wasm', '--data-root', data]);
      assert.equal(tok.status, 0, tok.stderr);
      const tokens = readdirSync(path.join(data, 'sample', 'tokens'));
      assert.equal(tokens.length, 1);
      assert.deepEqual(
        readdirSync(path.join(data, 'sample', 'tokens', tokens[0]))
          .filter((f) => f.endsWith('.arrow'))
          .sort(),
        ['00000.arrow', '00001.arrow'],
      );

      // optout import: parses in a worker thread
      writeFileSync(path.join(dir, 'optouts.txt'), 'https://example.com/a.jpg\nhttps://example.com/b.jpg\n');
      const imp = run('muse-data', ['optout', 'import', path.join(dir, 'optouts.txt'), '--data-root', data]);
      assert.equal(imp.status, 0, imp.stderr);
      const check = run('muse-data', ['optout', 'check', 'https://example.com/b.jpg', '--data-root', data]);
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /example\.com\/b\.jpg/);

      // muse-train and muse-sample load their modules (the refusal below comes from the training code)
      const train = run('muse-train', [
        '--stage',
        'tiny',
        '--out',
        path.join(dir, 'no-run'),
        '--resume',
        'latest',
        '--backend',
        'cpu',
      ]);
      assert.equal(train.status, 1, train.stderr);
      assert.match(train.stderr, /nothing to resume/);
      const sample = run('muse-sample', [
        '--checkpoint',
        path.join(dir, 'no-run'),
        '--prompt',
        'x',
        '--out',
        path.join(dir, 'x.png'),
      ]);
      assert.equal(sample.status, 1, sample.stderr);
      assert.match(sample.stderr, /no-run: no such directory/);

      // the scratch install really lacks tsx: the source fallback fails there
      const forced = spawnSync(process.execPath, [path.join(dir, 'bin', 'muse-data.js'), '--help'], {
        encoding: 'utf8',
        cwd: dir,
        env: { ...process.env, MUSE_FROM_SOURCE: '1' },
      });
      assert.notEqual(forced.status, 0);
      assert.match(forced.stderr, /tsx/);
      assert.match(
        readFileSync(path.join(dir, 'dist', 'pipeline', 'run-fetch.js'), 'utf8'),
        /worker\.ts/,
        'the source name, mapped at run time',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
