// tfjs 4.22's cpu ResizeNearestNeighborGrad reads dy at the *input's* batch stride, so its gradient is wrong
// for batch > 1 (the VQGAN decoder's nearest upsampling hit this). This replacement scatters each dy pixel
// back to the source pixel the forward pass copied it from, with the forward kernel's index rule.
import * as tf from '@tensorflow/tfjs';

interface CpuBackend {
  data: { get(dataId: tf.DataId): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

function sourceIndex(i: number, ratio: number, size: number, alignCorners: boolean, halfPixelCenters: boolean): number {
  const frac = halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
  const nearest = Math.min(size - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
  return halfPixelCenters ? Math.max(0, nearest) : nearest;
}

function resizeNearestNeighborGrad({
  inputs,
  backend: be,
  attrs,
}: {
  inputs: Record<string, tf.TensorInfo>;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = be as CpuBackend;
  const { images, dy } = inputs;
  const { alignCorners = false, halfPixelCenters = false } = (attrs ?? {}) as {
    alignCorners?: boolean;
    halfPixelCenters?: boolean;
  };
  const [batch, xH, xW, depth] = images.shape;
  const [, yH, yW] = dy.shape;
  const ratio = (x: number, y: number) => (alignCorners && y > 1 ? (x - 1) / (y - 1) : x / y);
  const rowRatio = ratio(xH, yH);
  const colRatio = ratio(xW, yW);
  const srcCol = Array.from({ length: yW }, (_, c) => sourceIndex(c, colRatio, xW, alignCorners, halfPixelCenters));
  const dyv = backend.data.get(dy.dataId).values;
  const out = new Float32Array(batch * xH * xW * depth);
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < yH; r++) {
      const rowBase = (b * xH + sourceIndex(r, rowRatio, xH, alignCorners, halfPixelCenters)) * xW;
      for (let c = 0; c < yW; c++) {
        const base = (rowBase + srcCol[c]) * depth;
        for (let d = 0; d < depth; d++) out[base + d] += dyv[o++];
      }
    }
  }
  return backend.makeTensorInfo([...images.shape], 'float32', out);
}

let registered = false;

/** Replaces buggy cpu kernels with corrected ones. Idempotent; takes effect for later ops. */
export function registerCpuKernelFixes(): void {
  if (registered) return;
  if (tf.getKernel('ResizeNearestNeighborGrad', 'cpu')) tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
  tf.registerKernel({
    kernelName: 'ResizeNearestNeighborGrad',
    backendName: 'cpu',
    kernelFunc: resizeNearestNeighborGrad as unknown as tf.KernelFunc,
  });
  registered = true;
}
