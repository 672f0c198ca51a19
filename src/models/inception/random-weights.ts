// Deterministic random weights for the FID Inception, identical to test/fixtures/make/make_eval_fixtures.py:
// each tensor is filled from a counter-based hash of its name (FNV-1a of the name as the seed, then
// fmix32(seed + i·0x9E3779B9) / 2³²), computed in float64 and rounded to float32. No real Inception weights can
// be downloaded here; this stands in for them in tests, the demo and the benchmark (the architecture and tensor
// names are the real ones, the features mean nothing perceptual).
import { allConvs, convTensors, FID_FEATURE_DIM } from './architecture.ts';

function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

function fillUniform(name: string, n: number, f: (u: number) => number): Float32Array {
  const seed = fnv1a32(name);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let h = (seed + Math.imul(i, 0x9e3779b9)) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
    out[i] = f((h >>> 0) / 4294967296);
  }
  return out;
}

/** One tensor's values, by the same rule per name suffix as the fixture generator. */
export function randomInceptionTensor(name: string, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (name.endsWith('conv.weight') || name === 'fc.weight') {
    const scale = Math.sqrt(6 / (n / shape[0]));
    return fillUniform(name, n, (u) => (2 * u - 1) * scale);
  }
  if (name.endsWith('bn.weight')) return fillUniform(name, n, (u) => 0.8 + 0.4 * u);
  if (name.endsWith('bn.bias') || name === 'fc.bias' || name.endsWith('running_mean'))
    return fillUniform(name, n, (u) => 0.2 * u - 0.1);
  if (name.endsWith('running_var')) return fillUniform(name, n, (u) => 0.5 + u);
  throw new Error(`no random rule for ${name}`);
}

/** Every tensor of pytorch-fid's state_dict (fc of the 1008-class head included, num_batches_tracked not). */
export function randomInceptionWeights(): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const c of allConvs()) {
    for (const [name, shape] of Object.entries(convTensors(c)))
      out[name] = { shape, data: randomInceptionTensor(name, shape) };
  }
  out['fc.weight'] = {
    shape: [1008, FID_FEATURE_DIM],
    data: randomInceptionTensor('fc.weight', [1008, FID_FEATURE_DIM]),
  };
  out['fc.bias'] = { shape: [1008], data: randomInceptionTensor('fc.bias', [1008]) };
  return out;
}
