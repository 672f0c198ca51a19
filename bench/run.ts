/**
 * `npm run bench -- <name> [--runs N] [--quick] [--flag value ...]`: runs one benchmark, writes
 * bench/results/<name>.json (machine, config, raw runs, medians, ratios) and prints a markdown table.
 * With no name, lists the benchmarks. A new benchmark is one line in BENCHMARKS: a module exporting
 * `(ctx: BenchContext) => Promise<BenchReport>`.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { machineInfo, medianLeaves, type BenchContext, type BenchReport } from './lib.ts';

interface Benchmark {
  description: string;
  defaultRuns: number;
  run: (ctx: BenchContext) => Promise<BenchReport>;
}

/**
 * Adapts a benchmark written to run on its own — `fn({ quick, log })` resolving to an object with a markdown
 * `table` (and optionally config, targets, notes) — to the runner: `--runs` repeats it, numeric leaves get medians.
 */
function standalone(
  load: () => Promise<(opts: { quick?: boolean; log?: (m: string) => void }) => Promise<object>>,
): Benchmark['run'] {
  return async (ctx) => {
    const fn = await load();
    const results: Array<Record<string, unknown>> = [];
    for (let r = 0; r < ctx.runs; r++) {
      if (ctx.runs > 1) ctx.log(`run ${r + 1}/${ctx.runs}`);
      results.push((await fn({ quick: ctx.quick, log: ctx.log })) as Record<string, unknown>);
    }
    const last = results[results.length - 1];
    const strip = ({ table: _t, config: _c, targets: _g, notes: _n, ...rest }: Record<string, unknown>) => rest;
    return {
      config: (last.config as Record<string, unknown>) ?? {},
      runs: results.map(strip),
      medians: medianLeaves(results.map(strip)),
      ratios: {},
      targets: last.targets as Record<string, unknown> | undefined,
      notes: last.notes as string[] | undefined,
      table:
        String(last.table ?? '') +
        (ctx.runs > 1 ? `\n\n(table of the last of ${ctx.runs} runs; medians in the JSON)` : ''),
    };
  };
}

const BENCHMARKS: Record<string, Benchmark> = {
  fetch: {
    description:
      'muse-data fetch over HTTP and HTTPS (local server) vs the image stage alone: successes/s, CPU ms per success, peak RSS',
    defaultRuns: 3,
    run: async (ctx) => (await import('./fetch.ts')).benchFetch(ctx),
  },
  'fetch-hostile': {
    description:
      'muse-data fetch with default flags on a hostile corpus (hung, refusing, dying, rate-limiting origins) vs a clean one, side by side: rows/s, stalls, wall time',
    defaultRuns: 1,
    run: async (ctx) => (await import('./fetch-hostile.ts')).benchFetchHostile(ctx),
  },
  models: {
    description:
      'VQGAN and MaskGIT transformer throughput (bench/models-*.ts; --backend auto|wasm|webgpu|cpu|tensorflow)',
    defaultRuns: 1,
    run: async (ctx) => (await import('./models.ts')).benchModels(ctx),
  },
  'index-optout': {
    description: 'opt-out index: import URLs/s with 10M URLs, check p50/p99, per-row cost in fetch, bytes/URL',
    defaultRuns: 1,
    run: standalone(async () => (await import('./index-optout.ts')).benchOptout),
  },
  'index-engines': {
    description:
      'sample index engine choice: DuckDB over sorted Parquet runs vs LevelDB (classic-level): record rows/s, look-up p50/p99, batch join, bytes/sample',
    defaultRuns: 1,
    run: standalone(async () => (await import('./index-engines.ts')).benchEngines),
  },
  'index-scale': {
    description:
      'the sample index at scale: shard-run recording rows/s as the index grows, compaction, look-up p50/p99 cold and warm, opt-out planning join, bytes/sample (--quick: 200k rows)',
    defaultRuns: 1,
    run: (ctx) => {
      const sizes = typeof ctx.flags.sizes === 'string' ? parseSizes(ctx.flags.sizes) : undefined;
      return standalone(async () => {
        const { benchIndexScale } = await import('./index-scale.ts');
        return (o) => benchIndexScale({ ...o, sizes });
      })(ctx);
    },
  },
  'index-dedup': {
    description: 'dedup: full pass over 1M perceptual hashes, probe lookups/s, rerun and incremental shard, index size',
    defaultRuns: 1,
    run: standalone(async () => (await import('./index-dedup.ts')).benchDedup),
  },
  decode: {
    description: "the shared image decode of tokenize and VQGAN training vs tokenize's previous decode: images/s",
    defaultRuns: 1,
    run: standalone(async () => (await import('./decode.ts')).benchDecode),
  },
  tokenize: {
    description:
      'muse-data tokenize: images/s of the built-in VQGAN + byt5-tiny per backend (tensorflow if installed, wasm, cpu; --backend NAME for one)',
    defaultRuns: 1,
    run: async (ctx) => {
      const backends = typeof ctx.flags.backend === 'string' ? [ctx.flags.backend] : undefined;
      const { benchTokenize } = await import('./tokenize.ts');
      return standalone(async () => (o) => benchTokenize({ ...o, backends }))(ctx);
    },
  },
  train: {
    description:
      'muse-train loop: step time of tiny and the models-bench transformer per backend side by side (wasm 1 thread, wasm all threads, webgpu with the adapter named), or one --backend wasm|webgpu|cpu|tensorflow with the data / fwd+bwd / optimizer split; --ranks 1,2: data parallel over MPI (all-reduce ms by gradient size, samples/s by rank count)',
    defaultRuns: 3,
    run: async (ctx) => {
      if (typeof ctx.flags.ranks === 'string') {
        const ranks = ctx.flags.ranks.split(',').map(Number);
        return standalone(async () => async (o) => (await import('./train-ranks.ts')).benchTrainRanks({ ...o, ranks }))(
          ctx,
        );
      }
      const { benchTrain, benchTrainSideBySide } = await import('./train.ts');
      // --backend X: that backend only (in this process); none: every backend side by side
      if (typeof ctx.flags.backend === 'string')
        return standalone(async () => (o) => benchTrain({ ...o, backend: ctx.flags.backend as string }))(ctx);
      // --variants 'tiny,models-bench transformer': only those configs (names as in the table)
      const variants =
        typeof ctx.flags.variants === 'string' ? ctx.flags.variants.split(',').map((v) => v.trim()) : undefined;
      return standalone(async () => (o) => benchTrainSideBySide({ ...o, variants }))(ctx);
    },
  },
  startup: {
    description: 'start-up CPU of the commands: compiled dist/ vs TypeScript through tsx, fetch workers included',
    defaultRuns: 3,
    run: async (ctx) => (await import('./startup.ts')).benchStartup(ctx),
  },
  queue: {
    description:
      'shard jobs through BullMQ + Redis: the fetch corpus with 1 and 2 `muse-data worker`s vs `fetch --workers 2`: successes/s, overhead per shard',
    defaultRuns: 3,
    run: async (ctx) => (await import('./queue.ts')).benchQueue(ctx),
  },
  serve: {
    description:
      'muse-data serve: requests/s and p50/p99 of URL lookup and grid pages, loopback autocannon; default 1M URLs / 20k samples, --full 10M / 100k',
    defaultRuns: 1,
    run: async (ctx) => {
      const { benchServe } = await import('./serve.ts');
      return standalone(async () => (o) => benchServe({ ...o, full: ctx.flags.full === true }))(ctx);
    },
  },
  eval: {
    description:
      'muse-eval: FID Inception features/s and CLIP image/text embeddings/s per backend (webgpu/tensorflow when present, wasm; --backend NAME), resize and Fréchet costs',
    defaultRuns: 1,
    run: async (ctx) => {
      const backends = typeof ctx.flags.backend === 'string' ? [ctx.flags.backend] : undefined;
      const { benchEval } = await import('./eval.ts');
      return standalone(async () => (o) => benchEval({ ...o, backends }))(ctx);
    },
  },
  loader: {
    description:
      'token-cache loader: batches/s and samples/s per core, tokens alone and + text, vs decoding JPEGs from tars',
    defaultRuns: 1,
    run: standalone(async () => (await import('./loader.ts')).benchLoader),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(BENCHMARKS).map((k) => k.length));
  return [
    'usage: npm run bench -- <name> [--runs N] [--quick] [--flag value ...]',
    '',
    'benchmarks:',
    ...Object.entries(BENCHMARKS).map(
      ([k, b]) => `  ${k.padEnd(width)}  ${b.description} (default --runs ${b.defaultRuns})`,
    ),
    '',
    'Results go to bench/results/<name>.json (variants: <name>.quick.json, <name>.<flag>-<value>.json); the table is printed to stdout.',
  ].join('\n');
}

/** `--sizes 10000000,50000000` or `--sizes 10M,50M`: row counts, increasing. */
function parseSizes(v: string): number[] {
  const sizes = v.split(',').map((x) => {
    const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(x.trim());
    if (!m) throw new Error(`--sizes: ${JSON.stringify(x)} is not a row count (e.g. 2000000 or 2M)`);
    return Math.round(Number(m[1]) * (m[2] ? (m[2].toLowerCase() === 'k' ? 1e3 : 1e6) : 1));
  });
  if (sizes.some((n, i) => n <= 0 || (i > 0 && n <= sizes[i - 1])))
    throw new Error(`--sizes: row counts must be positive and increasing, got ${v}`);
  return sizes;
}

function parseArgs(argv: string[]): {
  name?: string;
  runs?: number;
  quick: boolean;
  flags: Record<string, string | boolean>;
} {
  let name: string | undefined;
  let runs: number | undefined;
  let quick = false;
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--runs') {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs needs a positive integer, got ${argv[i]}`);
    } else if (a.startsWith('--runs=')) runs = Number(a.slice(7));
    else if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2);
      if (v !== undefined) flags[k] = v;
      else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) flags[k] = argv[++i];
      else flags[k] = true;
    } else if (name === undefined) name = a;
    else throw new Error(`unexpected argument '${a}'`);
  }
  return { name, runs, quick, flags };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (!args.name) {
    console.log(usage());
    return 0;
  }
  const bench = BENCHMARKS[args.name];
  if (!bench) {
    console.error(`unknown benchmark '${args.name}'\n\n${usage()}`);
    return 2;
  }
  const ctx: BenchContext = {
    runs: args.runs ?? bench.defaultRuns,
    quick: args.quick,
    flags: args.flags,
    log: (m) => process.stderr.write(`[bench ${args.name}] ${m}\n`),
  };
  const machine = machineInfo();
  const started = performance.now();
  const report = await bench.run(ctx);
  const out = {
    benchmark: args.name,
    machine,
    duration_s: Math.round((performance.now() - started) / 100) / 10,
    runs_requested: ctx.runs,
    quick: ctx.quick,
    ...report,
  };
  const dir = path.join(import.meta.dirname, 'results');
  await mkdir(dir, { recursive: true });
  // variants (quick, extra flags) get their own file so they never overwrite the reference results
  // (flag values become file-name safe: 'tiny,models-bench transformer' -> tiny_models-bench_transformer)
  const variant = [
    ctx.quick ? 'quick' : '',
    ...Object.entries(ctx.flags).map(([k, v]) => (v === true ? k : `${k}-${String(v).replace(/[^\w.-]+/g, '_')}`)),
  ].filter(Boolean);
  const file = path.join(dir, `${[args.name, ...variant].join('.')}.json`);
  await writeFile(file + '.tmp', JSON.stringify(out, null, 2) + '\n');
  await rename(file + '.tmp', file);
  const m = machine as { cpu_model: string; cores: number; node: string; date: string; loadavg_at_start: number[] };
  console.log(`## bench ${args.name}${ctx.quick ? ' (quick)' : ''}\n`);
  console.log(
    `${m.date.slice(0, 10)} · ${m.cpu_model}, ${m.cores} cores · node ${m.node} · load at start ${m.loadavg_at_start.join(' ')}\n`,
  );
  console.log(report.table);
  if (report.notes?.length) console.log('\n' + report.notes.map((n) => `- ${n}`).join('\n'));
  console.log(`\n(raw numbers: ${path.relative(process.cwd(), file)})`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
