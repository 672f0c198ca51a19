// The published aMUSEd checkpoints (amused/amused-256, amused/amused-512) are stored as diffusers'
// `UVit2DModel`: the same network as open-muse's MaskGiTUViT_v2 under other names, with the GLU's two input
// projections stored as one ([wi_1; wi_0] stacked). This maps such a config and checkpoint onto ours.
import * as tf from '@tensorflow/tfjs';
import type { TensorSource } from '../layers/params.ts';

/** True when `config` is a diffusers UVit2DModel config. */
export function isDiffusersUViT(config: Record<string, unknown>): boolean {
  return config._class_name === 'UVit2DModel';
}

/** A UVit2DModel config.json -> MaskGiTUViT config keys (diffusers' model always uses RMSNorm). */
export function configFromDiffusers(config: Record<string, unknown>): Record<string, unknown> {
  const side = Number(config.sample_size ?? 64);
  if (config.downsample !== config.upsample)
    throw new Error(`UVit2DModel config: downsample ${config.downsample} and upsample ${config.upsample} must agree`);
  const { block_out_channels, downsample, upsample, sample_size, _class_name, _diffusers_version, ...rest } = config;
  void upsample;
  void sample_size;
  void _class_name;
  void _diffusers_version;
  return {
    ...rest,
    block_out_channels: [block_out_channels ?? 768],
    force_down_up_sample: Boolean(downsample),
    norm_type: 'rmsnorm',
    num_vq_tokens: side * side,
  };
}

const RULES: Array<[RegExp, string]> = [
  [/^cond_embed\.linear_1\./, 'cond_embed.0.'],
  [/^cond_embed\.linear_2\./, 'cond_embed.2.'],
  [/^(transformer_layers\.\d+)\.norm1\.norm\./, '$1.attn_layer_norm.'],
  [/^(transformer_layers\.\d+)\.norm1\.linear\./, '$1.self_attn_adaLN_modulation.mapper.'],
  [/^(transformer_layers\.\d+)\.norm2\.norm\./, '$1.crossattn_layer_norm.'],
  [/^(transformer_layers\.\d+)\.norm2\.linear\./, '$1.cross_attn_adaLN_modulation.mapper.'],
  [/^(transformer_layers\.\d+)\.norm3\.norm\./, '$1.ffn.pre_mlp_layer_norm.'],
  [/^(transformer_layers\.\d+)\.norm3\.linear\./, '$1.ffn.adaLN_modulation.mapper.'],
  [/^(transformer_layers\.\d+)\.ff\.net\.2\./, '$1.ffn.wo.'],
  [/^(down|up)_block\.downsample\.norm\./, 'down_blocks.0.downsample.0.norm.'],
  [/^(down|up)_block\.downsample\.conv\./, 'down_blocks.0.downsample.1.'],
  [/^(down|up)_block\.upsample\.norm\./, 'up_blocks.0.upsample.0.norm.'],
  [/^(down|up)_block\.upsample\.conv\./, 'up_blocks.0.upsample.1.'],
  [/^(down|up)_block\.res_blocks\.(\d+)\.norm\./, '$1_blocks.0.res_blocks.$2.norm.norm.'],
  [/^(down|up)_block\.res_blocks\.(\d+)\.channelwise_linear_1\./, '$1_blocks.0.res_blocks.$2.channelwise.0.'],
  [/^(down|up)_block\.res_blocks\.(\d+)\.channelwise_norm\./, '$1_blocks.0.res_blocks.$2.channelwise.2.'],
  [/^(down|up)_block\.res_blocks\.(\d+)\.channelwise_linear_2\./, '$1_blocks.0.res_blocks.$2.channelwise.4.'],
  [/^(down|up)_block\.res_blocks\.(\d+)\.cond_embeds_mapper\./, '$1_blocks.0.res_blocks.$2.adaLN_modulation.mapper.'],
  [/^(down|up)_block\.attention_blocks\.(\d+)\.norm1\./, '$1_blocks.0.attention_blocks.$2.attn_layer_norm.'],
  [/^(down|up)_block\.attention_blocks\.(\d+)\.norm2\./, '$1_blocks.0.attention_blocks.$2.crossattn_layer_norm.'],
  [/^mlm_layer\.layer_norm\./, 'mlm_layer.layer_norm.norm.'],
];
const ATTN: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'out' };

/** Our (open-muse) name of a diffusers UVit2DModel tensor; the GLU projection is handled by the source. */
export function nameFromDiffusers(name: string): string {
  let n = name;
  for (const [re, to] of RULES) {
    if (re.test(n)) {
      n = n.replace(re, to);
      break;
    }
  }
  n = n.replace(/\.attn1\.(to_q|to_k|to_v|to_out\.0)\./, (_, w) => `.attention.${ATTN[w]}.`);
  n = n.replace(/\.attn2\.(to_q|to_k|to_v|to_out\.0)\./, (_, w) => `.crossattention.${ATTN[w]}.`);
  return n.replace(/^(down|up)_block\./, '$1_blocks.0.');
}

const GLU = /^(transformer_layers\.\d+)\.ff\.net\.0\.proj\.(weight|bias)$/;

/** `source` (diffusers names) seen under open-muse names, `ff.net.0.proj` split into wi_1 (first half) and wi_0. */
export function diffusersSource(source: TensorSource): TensorSource {
  const map = new Map<string, { from: string; half?: 0 | 1 }>();
  for (const name of source.names()) {
    const glu = GLU.exec(name);
    if (glu) {
      map.set(`${glu[1]}.ffn.wi_1.${glu[2]}`, { from: name, half: 0 });
      map.set(`${glu[1]}.ffn.wi_0.${glu[2]}`, { from: name, half: 1 });
    } else {
      map.set(nameFromDiffusers(name), { from: name });
    }
  }
  return {
    names: () => [...map.keys()],
    async tensor(name) {
      const entry = map.get(name);
      if (!entry) throw new Error(`no tensor ${name}`);
      const t = await source.tensor(entry.from);
      if (entry.half === undefined) return t;
      const rows = t.shape[0] / 2;
      const part = tf.slice(t, [entry.half * rows, ...t.shape.slice(1).map(() => 0)], [rows, ...t.shape.slice(1)]);
      t.dispose();
      return part;
    },
  };
}
