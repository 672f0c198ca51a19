// VQGAN encode throughput (images/s) at 64 px: pixels -> token ids with the reference f16 architecture
// (hidden 128, channel_mult 1,1,2,2,4, 2 res blocks, 1024 x 256 codebook; random weights, which cost the same
// as real ones), on the native tensorflow build (where built), wasm and cpu. A 64 px image gives a 4 x 4 token grid.
import * as tf from '@tensorflow/tfjs';
import { readBuildInfo } from '../src/runtime/tensorflow/build-dir.ts';
import { initBackend, type BackendName } from '../src/runtime/backend.ts';
import { VQGAN, type VqganConfig } from '../src/models/vqgan/index.ts';

export interface VqganBenchOptions {
  backends?: BackendName[];
  resolution?: number;
  /** Images per encode call. */
  batch?: number;
  /** Timed calls after one warm-up call. The cpu backend (~100x slower) gets one call of one image, unwarmed. */
  repeats?: number;
  config?: Partial<VqganConfig>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function benchOne(
  backend: BackendName,
  resolution: number,
  batch: number,
  repeats: number,
  warmup: boolean,
  config: Partial<VqganConfig>,
) {
  const choice = await initBackend(backend, { quiet: true });
  const model = VQGAN.create({ ...config, resolution }, 0);
  const pixels = tf.randomUniform([batch, resolution, resolution, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const encodeOnce = async () => {
    const ids = model.encode(pixels);
    await ids.data(); // wait for the result, not just the dispatch
    ids.dispose();
  };
  const times: number[] = [];
  try {
    if (warmup) await encodeOnce(); // kernel setup, weight packing, JIT
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      await encodeOnce();
      times.push(performance.now() - t0);
    }
  } finally {
    pixels.dispose();
    model.dispose();
  }
  const ms = median(times);
  return {
    backend: choice.name,
    ...(choice.adapter
      ? { adapter: `${choice.adapter.description}${choice.adapter.software ? ' (software)' : ''}` }
      : {}),
    resolution,
    batch,
    tokensPerImage: (resolution / 16) ** 2,
    params: 0,
    msPerBatch: Math.round(ms * 10) / 10,
    imagesPerSec: Math.round((batch / (ms / 1000)) * 100) / 100,
    runs: times.length,
    warmedUp: warmup,
  };
}

export async function benchVqgan(opts: VqganBenchOptions = {}): Promise<object> {
  const resolution = opts.resolution ?? 64;
  const batch = opts.batch ?? 8;
  const config = opts.config ?? {};
  const results = [];
  // The native build joins the default set where `npm run build:tensorflow` made one.
  const native: BackendName[] = readBuildInfo().info ? ['tensorflow'] : [];
  // cpu (~100x slower than wasm) only at the small default resolution.
  for (const backend of opts.backends ?? ([...native, 'wasm', ...(resolution <= 64 ? ['cpu'] : [])] as BackendName[])) {
    const slow = backend === 'cpu';
    results.push(await benchOne(backend, resolution, slow ? 1 : batch, slow ? 1 : (opts.repeats ?? 5), !slow, config));
  }
  const probe = VQGAN.create({ ...config, resolution }, 0);
  const params = probe.numParams();
  probe.dispose();
  for (const r of results) r.params = params;
  return {
    name: 'vqgan-encode',
    what: 'MaskGIT VQGAN encode (pixels -> token ids), reference f16 architecture, random weights',
    config: {
      hiddenChannels: 128,
      channelMult: [1, 1, 2, 2, 4],
      numResBlocks: 2,
      numEmbeddings: 1024,
      quantizedEmbedDim: 256,
      ...config,
    },
    results,
  };
}

// `node --import tsx bench/models-vqgan.ts` runs it alone.
// (By file name: bundled into bench/device's main.mjs, every module's import.meta.url is the bundle's.)
if (/[\\/]models-vqgan\.ts$/.test(process.argv[1] ?? '')) {
  console.log(JSON.stringify(await benchVqgan(), null, 2));
}
