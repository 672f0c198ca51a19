// Conv2DBackpropFilter for wasm (missing there): the gradient of every conv weight.
// Stride 1 with enough input channels: the gradient is itself a convolution, run on XNNPACK's conv —
//   dW[fh, fw, c, oc] = sum_{n,h,w} x[n, h+fh-top, w+fw-left, c] * dy[n, h, w, oc]
//   = conv2d(x as [C, H, W, N] (channels become the batch), filter dy as [OH, OW, N, OC]) -> [C, FH, FW, OC]
// (measured 2.4-4.3x faster than im2col on 16-32 px VQGAN levels; bench: npm run bench -- models).
// Otherwise (strided, or few input channels, where that conv has a huge kernel and a tiny output): im2col + one
// fast matmul per chunk of output positions: dW[oc, (fh,fw,c)] += dy[p, oc]^T @ cols[p, (fh,fw,c)], with the
// position chunk sized so the column buffer stays small (a 256 px VQGAN level would need GBs at once).
import * as tf from '@tensorflow/tfjs';
import { xnnMatMul } from './batch-matmul.ts';
import { asWasm, cppId, dispose, runKernel, type KernelArgs } from './wasm-backend.ts';

/** Input channels from which the convolution route is faster than im2col (measured: C=3 is slower, 32 faster). */
const CONV_ROUTE_MIN_CHANNELS = 16;

const CHUNK_ELEMENTS = 1 << 22; // 16 MiB of float32 columns per chunk

interface FilterAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

function conv2DBackpropFilter({ inputs, backend: be, attrs }: KernelArgs): tf.TensorInfo {
  const backend = asWasm(be);
  const { x, dy } = inputs;
  const a = attrs as unknown as FilterAttrs;
  if (a.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { batchSize, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: OC } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const { top, left } = info.padInfo;
  const bottom = FH + OH - 1 - H - top;
  const right = FW + OW - 1 - W - left;
  if (SH === 1 && SW === 1 && C >= CONV_ROUTE_MIN_CHANNELS && bottom >= 0 && right >= 0) {
    const xT = runKernel('Transpose', backend, { x }, { perm: [3, 1, 2, 0] }); // [C, H, W, N]
    const dyT = runKernel('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] }); // [OH, OW, N, OC]
    let g: tf.TensorInfo | undefined;
    try {
      g = runKernel('Conv2D', backend, { x: xT, filter: dyT }, {
        strides: 1,
        pad: [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: 1,
        dimRoundingMode: null,
      } as unknown as tf.NamedAttrMap); // [C, FH, FW, OC]
      return runKernel('Transpose', backend, { x: g }, { perm: [1, 2, 0, 3] });
    } finally {
      dispose(backend, xT, dyT, g);
    }
  }
  const KK = FH * FW * C;
  const P = batchSize * OH * OW;
  const chunk = Math.max(1, Math.min(P, Math.floor(CHUNK_ELEMENTS / Math.max(KK, OC))));
  const acc = new Float32Array(OC * KK); // dW transposed: [OC, KK]

  for (let p0 = 0; p0 < P; p0 += chunk) {
    const rows = Math.min(chunk, P - p0);
    const cols = backend.makeOutput([rows, KK], 'float32');
    const dyT = backend.makeOutput([OC, rows], 'float32');
    const part = backend.makeOutput([OC, KK], 'float32');
    const xv = backend.typedArrayFromHeap(x);
    const dyv = backend.typedArrayFromHeap(dy);
    const colv = backend.typedArrayFromHeap(cols);
    const dyTv = backend.typedArrayFromHeap(dyT);
    for (let r = 0; r < rows; r++) {
      const p = p0 + r;
      const n = Math.floor(p / (OH * OW));
      const oh = Math.floor(p / OW) % OH;
      const ow = p % OW;
      for (let fh = 0; fh < FH; fh++) {
        const ih = oh * SH - top + fh;
        for (let fw = 0; fw < FW; fw++) {
          const iw = ow * SW - left + fw;
          const dst = r * KK + (fh * FW + fw) * C;
          if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
            colv.fill(0, dst, dst + C);
            continue;
          }
          const src = ((n * H + ih) * W + iw) * C;
          if (C >= 16) colv.set(xv.subarray(src, src + C), dst);
          else for (let c = 0; c < C; c++) colv[dst + c] = xv[src + c];
        }
      }
      const dyRow = p * OC;
      for (let oc = 0; oc < OC; oc++) dyTv[oc * rows + r] = dyv[dyRow + oc];
    }
    xnnMatMul(cppId(backend, dyT), cppId(backend, cols), cppId(backend, part), OC, rows, KK);
    const partv = backend.typedArrayFromHeap(part);
    for (let i = 0; i < acc.length; i++) acc[i] += partv[i];
    dispose(backend, cols, dyT, part);
  }

  const out = backend.makeOutput([FH, FW, C, OC], 'float32');
  const outv = backend.typedArrayFromHeap(out);
  for (let oc = 0; oc < OC; oc++) for (let k = 0; k < KK; k++) outv[k * OC + oc] = acc[oc * KK + k];
  return out;
}

export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc,
};
