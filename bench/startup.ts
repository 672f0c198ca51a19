/**
 * `npm run bench -- startup`: what compiling the commands saves. Each command runs as a user runs it (`node bin/...`),
 * once from dist/ (compiled JavaScript) and once with MUSE_FROM_SOURCE=1 (TypeScript through tsx, what every process
 * paid before), alternating, several times; CPU is user+sys of the whole process tree (the command and any worker
 * processes it forks), wall is the command's. dist/ is brought up to date first (`npm run build`, incremental).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { markdownTable, median, reapedChildrenCpuMs, round, type BenchContext, type BenchReport } from './lib.ts';

const PROJECT = path.resolve(import.meta.dirname, '..');

interface Case {
  name: string;
  bin: string;
  args: string[];
}

function measure(c: Case, fromSource: boolean): { cpu_ms: number; wall_ms: number; status: number | null } {
  const env = { ...process.env, MUSE_FROM_SOURCE: fromSource ? '1' : '' };
  const cpu0 = reapedChildrenCpuMs();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [path.join(PROJECT, 'bin', `${c.bin}.js`), ...c.args], {
    cwd: PROJECT,
    env,
    encoding: 'utf8',
  });
  const wall = performance.now() - t0;
  return { cpu_ms: reapedChildrenCpuMs() - cpu0, wall_ms: wall, status: r.status };
}

export async function benchStartup(ctx: BenchContext): Promise<BenchReport> {
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: PROJECT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'muse-bench-startup-'));
  try {
    // 4 shards of 10 rows whose URLs are not URLs: the work is start-up, both worker processes included.
    const rows = ['url\tcaption', ...Array.from({ length: 40 }, (_, i) => `not-a-url-${i}\tcaption ${i}`)];
    writeFileSync(path.join(tmp, 'rows.tsv'), rows.join('\n') + '\n');
    let out = 0;
    const cases: Case[] = [
      { name: 'muse-data --help (loads every command)', bin: 'muse-data', args: ['--help'] },
      {
        name: 'muse-data fetch, 4 shards, --workers 2',
        bin: 'muse-data',
        get args() {
          return [
            'fetch',
            '--input',
            path.join(tmp, 'rows.tsv'),
            '--input-format',
            'tsv',
            '--url-col',
            'url',
            '--caption-col',
            'caption',
            '--samples-per-shard',
            '10',
            '--workers',
            '2',
            '--dead-links',
            'skip',
            '--log-format',
            'plain',
            '--out',
            path.join(tmp, `out-${out++}`),
          ];
        },
      },
      {
        name: 'muse-train up to its first check (backend + config)',
        bin: 'muse-train',
        args: ['--stage', 'tiny', '--resume', 'latest', '--out', path.join(tmp, 'no-run'), '--backend', 'wasm'],
      },
    ];
    const runs = ctx.quick ? 1 : ctx.runs;
    const results = [];
    for (const c of cases) {
      const compiled: Array<ReturnType<typeof measure>> = [];
      const source: Array<ReturnType<typeof measure>> = [];
      measure(c, false); // warm the file cache
      for (let i = 0; i < runs; i++) {
        compiled.push(measure(c, false));
        source.push(measure(c, true));
      }
      const statuses = new Set([...compiled, ...source].map((x) => x.status));
      if (statuses.size !== 1)
        throw new Error(
          `${c.name}: exit statuses differ between compiled and tsx runs (${[...statuses].join(', ')}): a build problem`,
        );
      const m = (xs: Array<ReturnType<typeof measure>>, k: 'cpu_ms' | 'wall_ms') =>
        round(median(xs.map((x) => x[k])), 0);
      const r = {
        name: c.name,
        exit_status: compiled[0].status,
        compiled: {
          cpu_ms: m(compiled, 'cpu_ms'),
          wall_ms: m(compiled, 'wall_ms'),
          cpu_ms_runs: compiled.map((x) => round(x.cpu_ms, 0)),
        },
        tsx: {
          cpu_ms: m(source, 'cpu_ms'),
          wall_ms: m(source, 'wall_ms'),
          cpu_ms_runs: source.map((x) => round(x.cpu_ms, 0)),
        },
      };
      ctx.log(`${c.name}: compiled ${r.compiled.cpu_ms} ms CPU, tsx ${r.tsx.cpu_ms} ms CPU`);
      results.push({
        ...r,
        cpu_ratio_compiled_to_tsx: round(r.compiled.cpu_ms / r.tsx.cpu_ms, 2),
        cpu_saved_ms: r.tsx.cpu_ms - r.compiled.cpu_ms,
      });
    }
    const table = markdownTable(
      ['command', 'CPU ms compiled', 'CPU ms tsx', 'CPU saved ms', 'compiled / tsx', 'wall ms compiled', 'wall ms tsx'],
      results.map((r) => [
        r.name,
        r.compiled.cpu_ms,
        r.tsx.cpu_ms,
        r.cpu_saved_ms,
        r.cpu_ratio_compiled_to_tsx,
        r.compiled.wall_ms,
        r.tsx.wall_ms,
      ]),
    );
    return {
      config: { runs, commands: cases.map((c) => `${c.bin} ${c.args.join(' ')}`) },
      runs: results,
      medians: Object.fromEntries(
        results.map((r) => [r.name, { compiled_cpu_ms: r.compiled.cpu_ms, tsx_cpu_ms: r.tsx.cpu_ms }]),
      ),
      ratios: Object.fromEntries(results.map((r) => [r.name, r.cpu_ratio_compiled_to_tsx])),
      notes: [
        'CPU = user+sys of the process tree (the command and the worker processes it forks), medians over the runs; compiled and tsx runs alternate.',
        'The fetch case rows all fail before any network call (their URLs are not URLs), so it measures start-up of the command and its two workers.',
        'The machine is shared with other jobs: compare the two columns of one run, not across runs.',
      ],
      table,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
