// The FID InceptionV3 of pytorch-fid (TensorFlow's 2015-12-05 Inception as ported to PyTorch), as data: every
// BasicConv2d (conv without bias + BatchNorm eps 1e-3 + ReLU) under its torchvision state_dict prefix, and the
// blocks up to the 2048-d average pool. The FID variant differs from torchvision's Inception3 in the pool
// branches: average pools exclude padding (count_include_pad=False, as TensorFlow does) and Mixed_7c max-pools.

export interface ConvSpec {
  /** state_dict prefix, e.g. `Mixed_5b.branch5x5_2` (tensors `<prefix>.conv.weight`, `<prefix>.bn.*`). */
  name: string;
  inC: number;
  outC: number;
  kh: number;
  kw: number;
  stride: number;
  padH: number;
  padW: number;
}

const conv = (
  name: string,
  inC: number,
  outC: number,
  k: number | [number, number],
  o: { stride?: number; pad?: number | [number, number] } = {},
): ConvSpec => {
  const [kh, kw] = typeof k === 'number' ? [k, k] : k;
  const [padH, padW] = o.pad === undefined ? [0, 0] : typeof o.pad === 'number' ? [o.pad, o.pad] : o.pad;
  return { name, inC, outC, kh, kw, stride: o.stride ?? 1, padH, padW };
};

export type Block =
  | { kind: 'conv'; conv: ConvSpec }
  | { kind: 'maxpool' } // 3×3, stride 2, no padding
  | { kind: 'A'; name: string; inC: number; pool: number }
  | { kind: 'B'; name: string; inC: number }
  | { kind: 'C'; name: string; inC: number; c7: number }
  | { kind: 'D'; name: string; inC: number }
  | { kind: 'E'; name: string; inC: number; pool: 'avg' | 'max' };

/** Input (299×299 after resizing) to the 2048-d features, in order. */
export const FID_INCEPTION_BLOCKS: Block[] = [
  { kind: 'conv', conv: conv('Conv2d_1a_3x3', 3, 32, 3, { stride: 2 }) },
  { kind: 'conv', conv: conv('Conv2d_2a_3x3', 32, 32, 3) },
  { kind: 'conv', conv: conv('Conv2d_2b_3x3', 32, 64, 3, { pad: 1 }) },
  { kind: 'maxpool' },
  { kind: 'conv', conv: conv('Conv2d_3b_1x1', 64, 80, 1) },
  { kind: 'conv', conv: conv('Conv2d_4a_3x3', 80, 192, 3) },
  { kind: 'maxpool' },
  { kind: 'A', name: 'Mixed_5b', inC: 192, pool: 32 },
  { kind: 'A', name: 'Mixed_5c', inC: 256, pool: 64 },
  { kind: 'A', name: 'Mixed_5d', inC: 288, pool: 64 },
  { kind: 'B', name: 'Mixed_6a', inC: 288 },
  { kind: 'C', name: 'Mixed_6b', inC: 768, c7: 128 },
  { kind: 'C', name: 'Mixed_6c', inC: 768, c7: 160 },
  { kind: 'C', name: 'Mixed_6d', inC: 768, c7: 160 },
  { kind: 'C', name: 'Mixed_6e', inC: 768, c7: 192 },
  { kind: 'D', name: 'Mixed_7a', inC: 768 },
  { kind: 'E', name: 'Mixed_7b', inC: 1280, pool: 'avg' },
  { kind: 'E', name: 'Mixed_7c', inC: 2048, pool: 'max' },
];

/** The convolutions of one Inception block, by branch (torchvision's names and shapes). */
export function blockConvs(b: Block): Record<string, ConvSpec> {
  const n = (s: string) => `${'name' in b ? b.name : ''}.${s}`;
  switch (b.kind) {
    case 'conv':
      return { conv: b.conv };
    case 'maxpool':
      return {};
    case 'A':
      return {
        branch1x1: conv(n('branch1x1'), b.inC, 64, 1),
        branch5x5_1: conv(n('branch5x5_1'), b.inC, 48, 1),
        branch5x5_2: conv(n('branch5x5_2'), 48, 64, 5, { pad: 2 }),
        branch3x3dbl_1: conv(n('branch3x3dbl_1'), b.inC, 64, 1),
        branch3x3dbl_2: conv(n('branch3x3dbl_2'), 64, 96, 3, { pad: 1 }),
        branch3x3dbl_3: conv(n('branch3x3dbl_3'), 96, 96, 3, { pad: 1 }),
        branch_pool: conv(n('branch_pool'), b.inC, b.pool, 1),
      };
    case 'B':
      return {
        branch3x3: conv(n('branch3x3'), b.inC, 384, 3, { stride: 2 }),
        branch3x3dbl_1: conv(n('branch3x3dbl_1'), b.inC, 64, 1),
        branch3x3dbl_2: conv(n('branch3x3dbl_2'), 64, 96, 3, { pad: 1 }),
        branch3x3dbl_3: conv(n('branch3x3dbl_3'), 96, 96, 3, { stride: 2 }),
      };
    case 'C': {
      const c = b.c7;
      return {
        branch1x1: conv(n('branch1x1'), b.inC, 192, 1),
        branch7x7_1: conv(n('branch7x7_1'), b.inC, c, 1),
        branch7x7_2: conv(n('branch7x7_2'), c, c, [1, 7], { pad: [0, 3] }),
        branch7x7_3: conv(n('branch7x7_3'), c, 192, [7, 1], { pad: [3, 0] }),
        branch7x7dbl_1: conv(n('branch7x7dbl_1'), b.inC, c, 1),
        branch7x7dbl_2: conv(n('branch7x7dbl_2'), c, c, [7, 1], { pad: [3, 0] }),
        branch7x7dbl_3: conv(n('branch7x7dbl_3'), c, c, [1, 7], { pad: [0, 3] }),
        branch7x7dbl_4: conv(n('branch7x7dbl_4'), c, c, [7, 1], { pad: [3, 0] }),
        branch7x7dbl_5: conv(n('branch7x7dbl_5'), c, 192, [1, 7], { pad: [0, 3] }),
        branch_pool: conv(n('branch_pool'), b.inC, 192, 1),
      };
    }
    case 'D':
      return {
        branch3x3_1: conv(n('branch3x3_1'), b.inC, 192, 1),
        branch3x3_2: conv(n('branch3x3_2'), 192, 320, 3, { stride: 2 }),
        branch7x7x3_1: conv(n('branch7x7x3_1'), b.inC, 192, 1),
        branch7x7x3_2: conv(n('branch7x7x3_2'), 192, 192, [1, 7], { pad: [0, 3] }),
        branch7x7x3_3: conv(n('branch7x7x3_3'), 192, 192, [7, 1], { pad: [3, 0] }),
        branch7x7x3_4: conv(n('branch7x7x3_4'), 192, 192, 3, { stride: 2 }),
      };
    case 'E':
      return {
        branch1x1: conv(n('branch1x1'), b.inC, 320, 1),
        branch3x3_1: conv(n('branch3x3_1'), b.inC, 384, 1),
        branch3x3_2a: conv(n('branch3x3_2a'), 384, 384, [1, 3], { pad: [0, 1] }),
        branch3x3_2b: conv(n('branch3x3_2b'), 384, 384, [3, 1], { pad: [1, 0] }),
        branch3x3dbl_1: conv(n('branch3x3dbl_1'), b.inC, 448, 1),
        branch3x3dbl_2: conv(n('branch3x3dbl_2'), 448, 384, 3, { pad: 1 }),
        branch3x3dbl_3a: conv(n('branch3x3dbl_3a'), 384, 384, [1, 3], { pad: [0, 1] }),
        branch3x3dbl_3b: conv(n('branch3x3dbl_3b'), 384, 384, [3, 1], { pad: [1, 0] }),
        branch_pool: conv(n('branch_pool'), b.inC, 192, 1),
      };
  }
}

/** Every BasicConv2d of the network. */
export function allConvs(): ConvSpec[] {
  return FID_INCEPTION_BLOCKS.flatMap((b) => Object.values(blockConvs(b)));
}

/** The parameter tensors (and their PyTorch shapes) of one BasicConv2d. */
export function convTensors(c: ConvSpec): Record<string, number[]> {
  return {
    [`${c.name}.conv.weight`]: [c.outC, c.inC, c.kh, c.kw],
    [`${c.name}.bn.weight`]: [c.outC],
    [`${c.name}.bn.bias`]: [c.outC],
    [`${c.name}.bn.running_mean`]: [c.outC],
    [`${c.name}.bn.running_var`]: [c.outC],
  };
}

export const BN_EPS = 1e-3;
/** Feature dimension of the final average pool. */
export const FID_FEATURE_DIM = 2048;
/** pytorch-fid resizes every input to this side. */
export const FID_INPUT_SIZE = 299;
