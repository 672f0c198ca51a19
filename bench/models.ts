/**
 * `npm run bench -- models [--backend auto|wasm|cpu|tensorflow] [--runs N]`: the model benchmarks written
 * alongside the model code — `benchVqgan()` from bench/models-vqgan.ts and `benchTransformer(backend)` from
 * bench/models-transformer.ts. Each is imported only if its file exists; a missing one is reported and skipped.
 * Each function already takes a median over its own timed steps; `--runs` repeats the whole call. Every call
 * runs in a fresh process (bench/models-child.ts): the tfjs backend of one part must not carry over to the next.
 */
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { markdownTable, numericLeaves, median, round, type BenchContext, type BenchReport } from './lib.ts';
import type { FromModelsChild, ToModelsChild } from './models-child.ts';

function runInChild(file: string, fn: string, args: unknown[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(import.meta.dirname, 'models-child.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let reply: FromModelsChild | undefined;
    child.once('message', (m: FromModelsChild) => (reply = m));
    child.once('exit', (code) => {
      if (reply?.ok) resolve(reply.result);
      else reject(new Error(reply ? reply.error : `${file}: process exited with code ${code} without a result`));
    });
    child.send({ file, fn, args } satisfies ToModelsChild);
  });
}

const PARTS: Array<{ name: string; file: string; fn: string; args: (ctx: BenchContext) => unknown[] }> = [
  // the VQGAN bench measures wasm and cpu unless --backend names one
  // --resolution 256: the reference VQGAN's 256 px encode (default 64)
  {
    name: 'vqgan',
    file: 'models-vqgan.ts',
    fn: 'benchVqgan',
    args: (ctx) => [
      {
        ...(typeof ctx.flags.backend === 'string' ? { backends: [ctx.flags.backend] } : {}),
        ...(typeof ctx.flags.resolution === 'string' ? { resolution: Number(ctx.flags.resolution), batch: 2 } : {}),
      },
    ],
  },
  {
    name: 'transformer',
    file: 'models-transformer.ts',
    fn: 'benchTransformer',
    args: (ctx) => [typeof ctx.flags.backend === 'string' ? ctx.flags.backend : 'auto'],
  },
];

export async function benchModels(ctx: BenchContext): Promise<BenchReport> {
  const runs: Array<{ part: string; run: number; result: Record<string, unknown> }> = [];
  const skipped: string[] = [];
  const medians: Record<string, Record<string, number>> = {};
  const sections: string[] = [];
  for (const part of PARTS) {
    const file = path.join(import.meta.dirname, part.file);
    if (!existsSync(file)) {
      const msg = `${part.name}: bench/${part.file} does not exist yet; skipped`;
      ctx.log(msg);
      skipped.push(msg);
      continue;
    }
    const leaves: Array<Record<string, number>> = [];
    for (let r = 0; r < ctx.runs; r++) {
      ctx.log(`${part.name}: run ${r + 1}/${ctx.runs}`);
      let result: Record<string, unknown>;
      try {
        result = await runInChild(file, part.fn, part.args(ctx));
      } catch (err) {
        const msg = `${part.name}: ${(err as Error).message.split('\n')[0]}; skipped`;
        ctx.log(msg);
        skipped.push(msg);
        break;
      }
      runs.push({ part: part.name, run: r + 1, result });
      leaves.push(numericLeaves(result));
    }
    if (!leaves.length) continue;
    const keys = [...new Set(leaves.flatMap((l) => Object.keys(l)))];
    medians[part.name] = Object.fromEntries(keys.map((k) => [k, round(median(leaves.map((l) => l[k])), 3)]));
    const label = runs.find((x) => x.part === part.name)?.result.backend;
    sections.push(
      `${part.name}${label ? ` (backend ${String(label)})` : ''}, median of ${ctx.runs} run(s)\n\n` +
        markdownTable(
          ['measure', 'value'],
          keys.map((k) => [k, medians[part.name][k]]),
        ),
    );
  }
  // ratios the parts compute themselves (e.g. against a PyTorch anchor) are kept under their own keys
  const ratios = Object.fromEntries(
    Object.entries(medians).flatMap(([part, m]) =>
      Object.entries(m)
        .filter(([k]) => /ratio/i.test(k))
        .map(([k, v]) => [`${part}.${k}`, v]),
    ),
  );
  return {
    config: { backend: ctx.flags.backend ?? 'auto', parts: PARTS.map((p) => p.name) },
    runs,
    medians,
    ratios,
    notes: skipped,
    table: [...sections, ...skipped].join('\n\n') || 'nothing to run',
  };
}
