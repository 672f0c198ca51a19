/** Shared helpers for the benchmarks: statistics, machine info, child-process CPU, markdown tables. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface BenchContext {
  /** Repetitions asked for (`--runs N`), or the benchmark's default. */
  runs: number;
  /** `--quick`: a small workload for smoke-testing; numbers are not meant to be quoted. */
  quick: boolean;
  /** Other `--flag value` / `--flag` arguments, e.g. `--backend wasm`. */
  flags: Record<string, string | boolean>;
  /** Progress to stderr (stdout carries the table). */
  log(message: string): void;
}

export interface BenchReport {
  config: Record<string, unknown>;
  /** Raw numbers of every run. */
  runs: unknown[];
  medians: Record<string, unknown>;
  ratios: Record<string, unknown>;
  /** Figures quoted from elsewhere, not measured here. */
  reference?: Record<string, unknown>;
  targets?: Record<string, unknown>;
  notes?: string[];
  /** Markdown printed to stdout (and kept in the JSON). */
  table: string;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu_model: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    total_mem_mb: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadavg_at_start: os.loadavg().map((x) => round(x, 2)),
    date: new Date().toISOString(),
  };
}

let clkTck: number | undefined;

/** Clock ticks per second of /proc times (USER_HZ; 100 on Linux in practice). */
export function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/**
 * CPU time (user + sys, ms) of this process's children that have been waited for: fields 16 and 17 (cutime,
 * cstime) of /proc/self/stat. A child's own time is added when it is reaped, and it includes the times of its
 * own reaped children (a fetch command's worker processes), so the difference across a child's lifetime is
 * the whole process tree's CPU, provided no other child is reaped meanwhile. Resolution: 1 tick (10 ms).
 */
export function reapedChildrenCpuMs(): number {
  const hz = clockTicks(); // first call runs `getconf`: before reading, so that child is not inside a window
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // the command name (field 2) may contain spaces: split after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field N is fields[N - 3]
  const cutime = Number(fields[16 - 3]);
  const cstime = Number(fields[17 - 3]);
  return ((cutime + cstime) * 1000) / hz;
}

/** A markdown table. */
export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(String).join(' | ')} |`);
  return lines.join('\n');
}

/** "median (min–max)" of a series, with the given decimals. */
export function spread(xs: number[], digits = 1): string {
  const s = xs.filter((x) => Number.isFinite(x));
  if (!s.length) return 'n/a';
  const m = median(s).toFixed(digits);
  if (s.length === 1) return m;
  return `${m} (${Math.min(...s).toFixed(digits)}–${Math.max(...s).toFixed(digits)})`;
}

/**
 * Numeric leaves of a result as dotted paths. Arrays of numbers (raw samples) are left out; an array of
 * objects is walked with each element named by its `backend` or `name` field, else its index.
 */
export function numericLeaves(o: unknown, prefix = '', out: Record<string, number> = {}): Record<string, number> {
  const join = (k: string) => (prefix ? `${prefix}.${k}` : k);
  if (typeof o === 'number') out[prefix] = o;
  else if (Array.isArray(o)) {
    if (o.every((v) => typeof v === 'number')) return out;
    o.forEach((v, i) => {
      const named =
        v && typeof v === 'object'
          ? ((v as Record<string, unknown>).backend ?? (v as Record<string, unknown>).name)
          : undefined;
      numericLeaves(v, join(typeof named === 'string' ? named : String(i)), out);
    });
  } else if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o)) numericLeaves(v, join(k), out);
  }
  return out;
}

/** Per key, the median over runs of each numeric leaf. */
export function medianLeaves(results: unknown[], digits = 3): Record<string, number> {
  const leaves = results.map((r) => numericLeaves(r));
  const keys = [...new Set(leaves.flatMap((l) => Object.keys(l)))];
  return Object.fromEntries(keys.map((k) => [k, round(median(leaves.map((l) => l[k])), digits)]));
}

/**
 * A VQGAN folder (the built-in architecture, random weights) with `codebook` codes, for training benches whose
 * transformer predicts more codes than the built-in VQGAN's 256: training checks model.vq's codebook first.
 */
export async function writeBenchVq(dir: string, codebook: number): Promise<string> {
  const { VQGAN } = await import('../src/models/vqgan/index.ts');
  const { BUILTIN_VQ_CONFIG } = await import('../src/models/registry.ts');
  const vq = VQGAN.create({ ...BUILTIN_VQ_CONFIG, numEmbeddings: codebook }, 0);
  try {
    await vq.save(dir);
  } finally {
    vq.dispose();
  }
  return dir;
}
