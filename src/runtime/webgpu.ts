// The webgpu backend under Node: Dawn's Node bindings (the `webgpu` npm package ships `dawn.node` for each
// platform, nothing is downloaded) provide `navigator.gpu`, and @tensorflow/tfjs-backend-webgpu runs on it.
// We pick the adapter ourselves (tfjs would take whatever Dawn offers first) so that `auto` can refuse a
// software rasteriser (Mesa lavapipe / llvmpipe, SwiftShader) and the choice can be printed with its limits.
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** What is printed about the adapter in use, and the limits that decide whether a model fits. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation of the API (lavapipe, SwiftShader): correct but slow. */
  software: boolean;
  /** Largest single GPU buffer, bytes (one tensor lives in one buffer). */
  maxBufferSize: number;
  /** Largest buffer one shader may bind, bytes (an op's input or output must fit). */
  maxStorageBufferBindingSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeWorkgroupsPerDimension: number;
}

// Minimal structural types for what we touch (the `webgpu` package's own types pull in the DOM lib).
interface GpuAdapterLike {
  info?: Record<string, unknown>;
  isFallbackAdapter?: boolean;
  features: { has(name: string): boolean };
  limits: Record<string, number>;
  requestDevice(desc: Record<string, unknown>): Promise<unknown>;
}
interface GpuLike {
  requestAdapter(opts?: Record<string, unknown>): Promise<GpuAdapterLike | null>;
}

/** The places Dawn looks for a driver, for the "no adapter" message. */
export const ADAPTER_HELP =
  'Dawn looked for a Vulkan driver (Linux; ICD files in /usr/share/vulkan/icd.d), Metal (macOS) or D3D12 (Windows). ' +
  "On Linux install your GPU vendor's Vulkan driver (NVIDIA: the proprietary driver with its Vulkan ICD) and the " +
  'loader (`apt-get install libvulkan1`); for a software GPU install Mesa lavapipe (Debian 12: add bookworm-backports and ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`; the Mesa 22 of Debian 12 itself is refused by Dawn)';

export class NoAdapterError extends Error {}

let gpu: GpuLike | undefined;
let chosen: { adapter: GpuAdapterLike; summary: AdapterSummary } | undefined;
let registered = false;

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic render/i;

function summarise(adapter: GpuAdapterLike): AdapterSummary {
  const info = adapter.info ?? {};
  const str = (k: string) => (typeof info[k] === 'string' ? (info[k] as string) : '');
  const text = [str('vendor'), str('architecture'), str('device'), str('description')].join(' ');
  const software = info.isFallbackAdapter === true || adapter.isFallbackAdapter === true || SOFTWARE_NAMES.test(text);
  const l = adapter.limits;
  return {
    vendor: str('vendor'),
    architecture: str('architecture'),
    device: str('device'),
    description: str('description'),
    software,
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
  };
}

/** One line for logs: vendor, architecture, software or not, buffer limits. */
export function describeAdapter(s: AdapterSummary): string {
  const mib = (n: number) => `${Math.round(n / 1024 ** 2)} MiB`;
  return (
    `${s.description || s.device || 'unnamed adapter'} (vendor ${s.vendor || '?'}, architecture ${s.architecture || '?'}, ` +
    `${s.software ? 'SOFTWARE adapter: correct but slow' : 'hardware'}; max buffer ${mib(s.maxBufferSize)}, ` +
    `max storage binding ${mib(s.maxStorageBufferBindingSize)}, workgroup storage ${s.maxComputeWorkgroupStorageSize} B)`
  );
}

/** libvulkan.so.1 in LD_LIBRARY_PATH or a standard library folder (where the dynamic loader finds it). */
export function vulkanLoaderFound(): boolean {
  const arch = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    `/usr/lib/${arch}`,
    `/lib/${arch}`,
    '/usr/lib64',
    '/lib64',
    '/usr/lib',
    '/lib',
    '/usr/local/lib',
  ];
  return dirs.some((d) => existsSync(path.join(d, 'libvulkan.so.1')));
}

/** Dawn's flags for this process (`adapter=NAME`: the adapter of this data-parallel rank). */
let dawnFlags: string[] = [];

type Dawn = { create(flags: string[]): GpuLike; globals: Record<string, unknown> };

async function loadGpu(): Promise<GpuLike> {
  if (gpu) return gpu;
  const dawn = (await import('webgpu')) as unknown as Dawn;
  // tfjs-backend-webgpu refers to GPUBufferUsage, GPUMapMode, ... as globals, as in a browser.
  for (const [k, v] of Object.entries(dawn.globals))
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  gpu = dawn.create(dawnFlags);
  return gpu;
}

/** An adapter as Dawn lists it. */
export interface ListedAdapter {
  backend: string;
  name: string;
}

/** The adapters in Dawn's "Available adapters:" list (the error of a request for an adapter name that does not exist). */
export function parseAdapterList(message: string): ListedAdapter[] {
  return [...message.matchAll(/^\s*\* backend: '([^']*)', name: '([^']*)'\s*$/gm)].map((m) => ({
    backend: m[1],
    name: m[2],
  }));
}

/**
 * Every adapter Dawn can open, in its order. The WebGPU API has no enumeration: Dawn's Node binding lists them in the
 * error of a request for an adapter name that does not exist, and selects one by name (its `adapter=NAME` flag).
 */
export async function listAdapters(): Promise<ListedAdapter[]> {
  if (process.platform === 'linux' && !vulkanLoaderFound()) return [];
  const dawn = (await import('webgpu')) as unknown as Dawn;
  try {
    await dawn.create(['adapter=\u0000 no adapter has this name']).requestAdapter();
  } catch (err) {
    return parseAdapterList(String((err as Error)?.message ?? err));
  }
  return [];
}

/**
 * The adapter of local rank `localRank` of `localSize` ranks on this machine: MUSE_WEBGPU_ADAPTER (a name, set per
 * rank) when set; else, with several ranks, the k-th hardware adapter in Dawn's order. Dawn selects by name, so
 * identical GPUs (same name) cannot be told apart: refused with what to do instead, as are fewer GPUs than ranks.
 * One rank, or only software adapters (lavapipe): no choice, Dawn's default.
 */
export function adapterForLocalRank(
  adapters: ListedAdapter[],
  localRank: number,
  localSize: number,
  env: NodeJS.ProcessEnv = process.env,
): { name?: string; note: string } {
  const set = env.MUSE_WEBGPU_ADAPTER?.trim();
  if (set) return { name: set, note: `MUSE_WEBGPU_ADAPTER=${set}` };
  if (localSize <= 1) return { note: 'one rank on this machine: the adapter Dawn offers first' };
  const hardware = adapters.filter((a) => !SOFTWARE_NAMES.test(a.name));
  if (!hardware.length)
    return {
      note: `no hardware adapter (${adapters.map((a) => a.name).join(', ') || 'none listed'}): every rank uses Dawn's default`,
    };
  const names = hardware.map((a) => `'${a.name}'`).join(', ');
  if (hardware.length < localSize) {
    throw new Error(
      `${localSize} ranks on this machine but ${hardware.length} WebGPU adapter${hardware.length === 1 ? '' : 's'} (${names}): start at most one rank per GPU`,
    );
  }
  const { name } = hardware[localRank];
  if (hardware.filter((a) => a.name === name).length > 1) {
    throw new Error(
      `local rank ${localRank} would take WebGPU adapter ${localRank} ('${name}'), but Dawn selects adapters by name and ` +
        `${hardware.filter((a) => a.name === name).length} of them are named so (${names}): use --backend tensorflow (one GPU per rank through ` +
        'CUDA_VISIBLE_DEVICES), or one rank per machine',
    );
  }
  return {
    name,
    note: `local rank ${localRank} of ${localSize}: WebGPU adapter ${localRank} of ${hardware.length}, '${name}'`,
  };
}

/**
 * Picks this rank's adapter before the webgpu backend loads (see adapterForLocalRank); returns what it chose.
 * Lists adapters only when several ranks share the machine or MUSE_WEBGPU_ADAPTER is set.
 */
export async function assignLocalAdapter(
  comm: { localRank: number; localSize: number },
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (gpu) throw new Error('assignLocalAdapter: the WebGPU adapter was already opened');
  const needList = comm.localSize > 1 && !env.MUSE_WEBGPU_ADAPTER?.trim();
  const pick = adapterForLocalRank(needList ? await listAdapters() : [], comm.localRank, comm.localSize, env);
  if (pick.name) dawnFlags = [`adapter=${pick.name}`];
  return pick.note;
}

/**
 * Finds an adapter: a hardware one first (high-performance preference); a software one only when
 * `allowSoftware`. Throws NoAdapterError saying what was found and how to get an adapter.
 */
export async function findAdapter(
  allowSoftware: boolean,
): Promise<{ adapter: GpuAdapterLike; summary: AdapterSummary }> {
  if (chosen && (allowSoftware || !chosen.summary.software)) return chosen;
  // 'auto' on Linux without a Vulkan loader: Dawn would print its "Couldn't load Vulkan" trace to stderr (from
  // native code) and find nothing. Say so in the one backend line instead.
  if (!allowSoftware && process.platform === 'linux' && !vulkanLoaderFound())
    throw new NoAdapterError('no Vulkan loader (libvulkan.so.1) on this machine');
  const g = await loadGpu();
  const seen: AdapterSummary[] = [];
  for (const opts of [
    { powerPreference: 'high-performance' },
    { powerPreference: 'low-power' },
    { forceFallbackAdapter: true },
  ]) {
    const adapter = await g.requestAdapter(opts);
    if (!adapter) continue;
    const summary = summarise(adapter);
    if (!summary.software || allowSoftware) {
      chosen = { adapter, summary };
      return chosen;
    }
    seen.push(summary);
  }
  const found = seen.length
    ? `only a software adapter was found (${seen[0].description || seen[0].device}); 'auto' does not use one, ask for it with --backend webgpu`
    : 'no WebGPU adapter was found';
  // 'auto' just moves on to the next backend: the how-to is for an explicit --backend webgpu.
  throw new NoAdapterError(allowSoftware ? `${found}. ${ADAPTER_HELP}` : found);
}

/** Registers tfjs's webgpu backend on the chosen adapter (once per process). */
async function registerOn(adapter: GpuAdapterLike): Promise<void> {
  if (registered) return;
  // Import before any navigator.gpu exists, so the package's own registration (which would pick an adapter
  // itself) is skipped; ours below uses the adapter chosen above with the limits tfjs asks for.
  const { WebGPUBackend } = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as {
    WebGPUBackend: new (device: unknown, info?: unknown) => tf.KernelBackend;
  };
  const g = await loadGpu();
  const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
  if (!nav) Object.defineProperty(globalThis, 'navigator', { value: { gpu: g }, configurable: true, writable: true });
  else if (!nav.gpu) Object.defineProperty(nav, 'gpu', { value: g, configurable: true });
  const l = adapter.limits;
  tf.registerBackend(
    'webgpu',
    async () => {
      const requiredFeatures = ['timestamp-query'].filter((f) => adapter.features.has(f));
      const device = await adapter.requestDevice({
        requiredFeatures,
        requiredLimits: {
          maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          maxBufferSize: l.maxBufferSize,
          maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        },
      });
      return new WebGPUBackend(device, adapter.info);
    },
    0,
  );
  registered = true;
}

/** Makes 'webgpu' the tfjs backend; software adapters only when `allowSoftware`. Returns the adapter used. */
export async function setWebgpuBackend(allowSoftware: boolean): Promise<AdapterSummary> {
  const { adapter, summary } = await findAdapter(allowSoftware);
  await registerOn(adapter);
  if (!(await tf.setBackend('webgpu'))) throw new Error("the 'webgpu' backend did not initialise");
  return summary;
}

/** The adapter in use, when the webgpu backend was set by setWebgpuBackend. */
export function currentAdapter(): AdapterSummary | undefined {
  return tf.getBackend() === 'webgpu' ? chosen?.summary : undefined;
}

/** The largest tensor (bytes) the adapter in use holds in one buffer; undefined off webgpu. */
export function gpuBufferLimit(): number | undefined {
  const s = currentAdapter();
  return s ? Math.min(s.maxBufferSize, s.maxStorageBufferBindingSize) : undefined;
}

/**
 * Throws a clear error when one tensor of `items` x `bytesPerItem` would not fit in one GPU buffer / shader
 * binding of the adapter in use (no-op on other backends). `what` names the tensor, `setting` what to lower.
 */
export function assertGpuBufferFits(bytesPerItem: number, items: number, what: string, setting: string): void {
  const limit = gpuBufferLimit();
  const bytes = bytesPerItem * items;
  if (limit === undefined || bytes <= limit) return;
  const s = currentAdapter()!;
  const mib = (n: number) => (n / 1024 ** 2).toFixed(1);
  throw new Error(
    `${what} needs one ${mib(bytes)} MiB GPU buffer but the adapter (${s.description || s.device}) allows ` +
      `${mib(limit)} MiB per buffer (maxStorageBufferBindingSize / maxBufferSize): lower ${setting} ` +
      `(at most ${Math.max(0, Math.floor(limit / bytesPerItem))} fit)`,
  );
}
