// VQGAN parameters: names, PyTorch shapes and initialisation, following open-muse's module tree so that
// checkpoints load by name. Conv weights are stored for tfjs as HWIO (PyTorch: OIHW); the rest as is.
import * as tf from '@tensorflow/tfjs';
import { derived, type VqganConfig } from './config.ts';

export type ParamKind = 'conv' | 'conv_bias' | 'norm_weight' | 'norm_bias' | 'embedding';

export interface ParamSpec {
  name: string;
  kind: ParamKind;
  /** Shape in the PyTorch state_dict (conv: [out, in, kH, kW]). */
  torchShape: number[];
  /** conv_bias only: the conv's fan-in, for PyTorch's default bias bound. */
  fanIn?: number;
}

function resnetBlock(specs: ParamSpec[], prefix: string, cin: number, cout: number): void {
  specs.push(
    { name: `${prefix}.norm1.weight`, kind: 'norm_weight', torchShape: [cin] },
    { name: `${prefix}.norm1.bias`, kind: 'norm_bias', torchShape: [cin] },
    { name: `${prefix}.conv1.weight`, kind: 'conv', torchShape: [cout, cin, 3, 3] },
    { name: `${prefix}.norm2.weight`, kind: 'norm_weight', torchShape: [cout] },
    { name: `${prefix}.norm2.bias`, kind: 'norm_bias', torchShape: [cout] },
    { name: `${prefix}.conv2.weight`, kind: 'conv', torchShape: [cout, cout, 3, 3] },
  );
  // The shortcut is out -> out: it is applied to the block's output, not its input (see layers.ts).
  if (cin !== cout) specs.push({ name: `${prefix}.nin_shortcut.weight`, kind: 'conv', torchShape: [cout, cout, 1, 1] });
}

function conv(specs: ParamSpec[], prefix: string, cout: number, cin: number, k: number, bias: boolean): void {
  specs.push({ name: `${prefix}.weight`, kind: 'conv', torchShape: [cout, cin, k, k] });
  if (bias) specs.push({ name: `${prefix}.bias`, kind: 'conv_bias', torchShape: [cout], fanIn: cin * k * k });
}

function norm(specs: ParamSpec[], prefix: string, c: number): void {
  specs.push(
    { name: `${prefix}.weight`, kind: 'norm_weight', torchShape: [c] },
    { name: `${prefix}.bias`, kind: 'norm_bias', torchShape: [c] },
  );
}

/** Every parameter of the model, in open-muse's state_dict names. */
export function vqganParamSpecs(c: VqganConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  const { numResolutions: n } = derived(c);
  const ch = (i: number) => c.hiddenChannels * c.channelMult[i];
  const top = ch(n - 1);

  conv(specs, 'encoder.conv_in', c.hiddenChannels, c.numChannels, 3, false);
  for (let i = 0; i < n; i++) {
    let cin = i === 0 ? c.hiddenChannels : ch(i - 1);
    for (let j = 0; j < c.numResBlocks; j++) {
      resnetBlock(specs, `encoder.down.${i}.block.${j}`, cin, ch(i));
      cin = ch(i);
    }
  }
  for (let j = 0; j < c.numResBlocks; j++) resnetBlock(specs, `encoder.mid.${j}`, top, top);
  norm(specs, 'encoder.norm_out', top);
  conv(specs, 'encoder.conv_out', c.zChannels, top, 1, true);

  conv(specs, 'decoder.conv_in', top, c.zChannels, 3, true);
  for (let j = 0; j < c.numResBlocks; j++) resnetBlock(specs, `decoder.mid.${j}`, top, top);
  for (let i = 0; i < n; i++) {
    let cin = i === n - 1 ? top : ch(i + 1);
    for (let j = 0; j < c.numResBlocks; j++) {
      resnetBlock(specs, `decoder.up.${i}.block.${j}`, cin, ch(i));
      cin = ch(i);
    }
    if (i !== 0) conv(specs, `decoder.up.${i}.upsample_conv`, ch(i), ch(i), 3, true);
  }
  norm(specs, 'decoder.norm_out', ch(0));
  conv(specs, 'decoder.conv_out', c.numChannels, ch(0), 3, true);

  specs.push({
    name: 'quantize.embedding.weight',
    kind: 'embedding',
    torchShape: [c.numEmbeddings, c.quantizedEmbedDim],
  });
  return specs;
}

/** PyTorch layout -> tfjs layout. */
export function fromTorch(spec: ParamSpec, t: tf.Tensor): tf.Tensor {
  return spec.kind === 'conv' ? tf.transpose(t, [2, 3, 1, 0]) : t.clone();
}

/** tfjs layout -> PyTorch layout. */
export function toTorch(spec: ParamSpec, t: tf.Tensor): tf.Tensor {
  return spec.kind === 'conv' ? tf.transpose(t, [3, 2, 0, 1]) : t.clone();
}

/** PyTorch default initialisation (kaiming-uniform convs, unit norms, U(-1/K, 1/K) codebook), in tfjs layout. */
export function initParam(spec: ParamSpec, seed: number): tf.Tensor {
  const s = spec.torchShape;
  switch (spec.kind) {
    case 'conv': {
      const bound = 1 / Math.sqrt(s[1] * s[2] * s[3]);
      return tf.randomUniform([s[2], s[3], s[1], s[0]], -bound, bound, 'float32', seed);
    }
    case 'conv_bias': {
      const bound = 1 / Math.sqrt(spec.fanIn ?? s[0]);
      return tf.randomUniform(s, -bound, bound, 'float32', seed);
    }
    case 'norm_weight':
      return tf.ones(s);
    case 'norm_bias':
      return tf.zeros(s);
    case 'embedding':
      return tf.randomUniform(s, -1 / s[0], 1 / s[0], 'float32', seed);
  }
}
