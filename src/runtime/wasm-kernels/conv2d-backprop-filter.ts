// Conv2DBackpropFilter for wasm (missing there): the gradient of every conv weight. im2col + one fast
// matmul per chunk of output positions: dW[oc, (fh,fw,c)] += dy[p, oc]^T @ cols[p, (fh,fw,c)], with the
// position chunk sized so the column buffer stays small (a 256 px VQGAN level would need GBs at once).
import * as tf from '@tensorflow/tfjs';
import { xnnMatMul } from './batch-matmul.ts';
import { asWasm, cppId, dispose, type KernelArgs } from './wasm-backend.ts';

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
    x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  const { batchSize, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: OC } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const { top, left } = info.padInfo;
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
