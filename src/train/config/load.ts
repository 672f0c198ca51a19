/**
 * Resolves a training config: defaults <- stage file (or --config FILE) <- `--set key=value` overrides, then
 * validates it. Every error names the file or flag and the key.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError, isPlainObject as isTree, parseYamlMapping, unknownKeyError } from '../../util/yaml-config.ts';
import { maskSchedule } from '../../models/schedules.ts';
import { parseTextEncoderSpec, textEncoderSpecs, type TextEncoderSpec } from '../../models/text/encoders.ts';
import { checkTokenModelConfig, tokenModelKeys } from '../../models/token-model.ts';
import { configFromJson, derived, vqganJsonDefaults } from '../../models/vqgan/config.ts';
import { DEFAULTS, ENUMS, FREE_FORM, STAGES, VALUE_KINDS, type Stage, type TrainConfig } from './schema.ts';

export { ConfigError } from '../../util/yaml-config.ts';

type Tree = Record<string, unknown>;

export interface LoadConfigOptions {
  /** Stage name: reads `<configsDir>/<stage>.yaml` unless `file` is given. */
  stage?: string;
  file?: string;
  /** `key.path=value` overrides, values parsed as YAML scalars/flow collections. */
  sets?: string[];
  configsDir: string;
}

export function loadTrainConfig(opts: LoadConfigOptions): TrainConfig {
  if (!opts.stage && !opts.file) throw new ConfigError('give --stage or --config');
  if (opts.stage && !(STAGES as readonly string[]).includes(opts.stage)) {
    throw new ConfigError(`unknown stage '${opts.stage}' (expected one of ${STAGES.join(', ')})`);
  }
  const file = opts.file ?? path.join(opts.configsDir, `${opts.stage}.yaml`);
  if (!existsSync(file)) throw new ConfigError(`${file}: no such config file`);
  const parsed = parseYamlMapping(readFileSync(file, 'utf8'), file, 'of sections (experiment, model, data, ...)');
  const merged = structuredClone(DEFAULTS) as unknown as Tree;
  mergeInto(merged, parsed, '', file);
  for (const set of opts.sets ?? []) applySet(merged, set);
  if (opts.stage) {
    if (parsed.stage !== undefined && parsed.stage !== opts.stage) {
      throw new ConfigError(`${file}: says stage '${String(parsed.stage)}' but --stage is '${opts.stage}'`);
    }
    merged.stage = opts.stage;
  }
  const config = merged as unknown as TrainConfig;
  validate(config, file);
  return config;
}

/** `a.b.c=value` -> sets tree.a.b.c (the key must exist in the schema, except inside model.transformer / model.vqgan). */
export function applySet(tree: Tree, set: string): void {
  const eq = set.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set ${set}: expected key=value, e.g. training.max_steps=100`);
  const key = set.slice(0, eq).trim();
  const raw = set.slice(eq + 1);
  let value: unknown;
  try {
    value = raw === '' ? '' : YAML.parse(raw);
  } catch {
    value = raw; // not YAML: keep the text
  }
  const parts = key.split('.');
  let node: Tree = tree;
  let free = false;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (!free) checkKnown(node, p, parts.slice(0, i + 1).join('.'), `--set ${set}`);
    free ||= FREE_FORM.has(parts.slice(0, i + 1).join('.'));
    if (i === parts.length - 1) node[p] = value;
    else {
      if (!isTree(node[p])) node[p] = {};
      node = node[p] as Tree;
    }
  }
}

function checkKnown(node: Tree, key: string, fullKey: string, where: string): void {
  if (key in node) return;
  throw unknownKeyError(where, fullKey, Object.keys(node));
}

function mergeInto(target: Tree, source: Tree, prefix: string, file: string): void {
  for (const [key, value] of Object.entries(source)) {
    const full = prefix ? `${prefix}.${key}` : key;
    if (FREE_FORM.has(full)) {
      if (!isTree(value)) throw new ConfigError(`${file}: ${full} must be a mapping of model config keys`);
      target[key] = { ...(target[key] as Tree), ...value };
      continue;
    }
    checkKnown(target, key, full, file);
    if (isTree(target[key]) && !(full in VALUE_KINDS)) {
      if (!isTree(value)) throw new ConfigError(`${file}: ${full} must be a mapping, got ${JSON.stringify(value)}`);
      mergeInto(target[key] as Tree, value, full, file);
    } else {
      target[key] = value;
    }
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v) && v.length === 0) return 'empty[]';
  if (Array.isArray(v))
    return v.every((x) => typeof x === 'number')
      ? 'number[]'
      : v.every((x) => typeof x === 'string')
        ? 'string[]'
        : 'array';
  return typeof v;
}

/**
 * A model section (`model.transformer`, `model.vqgan`): a mapping whose keys are the model's (unknown ones are
 * refused with a suggestion) and whose values have the type of the key's default (a list default also takes one
 * number, as open-muse's configs do; a null default takes a number). Keys starting with `_` (`_class_name`) pass.
 */
function checkModelSection(section: unknown, schema: Record<string, unknown>, name: string, file: string): void {
  if (!isTree(section))
    throw new ConfigError(`${file}: ${name} must be a mapping of model config keys, got ${JSON.stringify(section)}`);
  for (const [key, value] of Object.entries(section)) {
    if (key.startsWith('_')) continue;
    if (!(key in schema)) throw unknownKeyError(file, `${name}.${key}`, Object.keys(schema));
    const def = schema[key];
    if (def === undefined || value === undefined) continue;
    const want = def === null ? ['number', 'null'] : [kindOf(def).replace('empty[]', 'number[]')];
    if (want[0] === 'number[]') want.push('number');
    if (want[0] === 'number' && Array.isArray(value)) want.push('number[]');
    const got = kindOf(value) === 'empty[]' ? 'number[]' : kindOf(value);
    if (!want.includes(got))
      throw new ConfigError(`${file}: ${name}.${key} must be ${want.join(' or ')}, got ${JSON.stringify(value)}`);
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new ConfigError(`${file}: ${name}.${key} must be a finite number, got ${value}`);
  }
}

/** Checks every leaf against the default's kind (or VALUE_KINDS), enums and ranges. */
function validate(c: TrainConfig, file: string): void {
  const fail = (key: string, why: string): never => {
    throw new ConfigError(`${file}: ${key} ${why}`);
  };
  const walk = (node: Tree, defaults: Tree, prefix: string) => {
    for (const [key, def] of Object.entries(defaults)) {
      const full = prefix ? `${prefix}.${key}` : key;
      const value = node[key];
      if (FREE_FORM.has(full)) continue;
      if (isTree(def) && !(full in VALUE_KINDS)) {
        walk(value as Tree, def, full);
        continue;
      }
      const allowed = (VALUE_KINDS[full] ?? kindOf(def)).split('|');
      const kind = kindOf(value);
      const ok = allowed.includes(kind) || (kind === 'empty[]' && allowed.some((a) => a.endsWith('[]')));
      if (!ok) {
        fail(full, `must be ${allowed.join(' or ')}, got ${JSON.stringify(value)}`);
      }
      if (typeof value === 'number' && !Number.isFinite(value)) fail(full, `must be a finite number, got ${value}`);
      const choices = ENUMS[full];
      if (choices && !choices.includes(value as string))
        fail(full, `must be one of ${choices.join(', ')}, got '${String(value)}'`);
    }
  };
  walk(c as unknown as Tree, DEFAULTS as unknown as Tree, '');
  // The model sections against their architecture's keys, like every other section.
  checkModelSection(c.model.vqgan, vqganJsonDefaults(), 'model.vqgan', file);
  if ((ENUMS['model.architecture'] as readonly string[]).includes(c.model.architecture)) {
    checkModelSection(c.model.transformer, tokenModelKeys(c.model.architecture), 'model.transformer', file);
  }

  const t = c.training;
  const positiveInts: Array<[string, number]> = [
    ['training.batch_size', t.batch_size],
    ['training.gradient_accumulation_steps', t.gradient_accumulation_steps],
    ['training.max_steps', t.max_steps],
    ['training.save_every', t.save_every],
    ['training.keep_last', t.keep_last],
    ['training.log_every', t.log_every],
    ['sampling.steps', c.sampling.steps],
  ];
  for (const [key, v] of positiveInts)
    if (!Number.isInteger(v) || v < 1) fail(key, `must be a positive integer, got ${v}`);
  if (t.batch_size % t.gradient_accumulation_steps !== 0) {
    fail(
      'training.batch_size',
      `${t.batch_size} (the samples of one optimizer update) does not divide by training.gradient_accumulation_steps ${t.gradient_accumulation_steps}: ` +
        `each update runs ${t.gradient_accumulation_steps} equal micro-batches; use a batch_size that is a multiple of ${t.gradient_accumulation_steps}`,
    );
  }
  const nonNegativeInts: Array<[string, number]> = [
    ['training.seed', t.seed],
    ['training.validate_every', t.validate_every],
    ['training.validation_batches', t.validation_batches],
    ['training.sample_every', t.sample_every],
    ['lr_scheduler.warmup_steps', c.lr_scheduler.warmup_steps],
    ['lr_scheduler.decay_steps', c.lr_scheduler.decay_steps],
    ['vqgan_training.autoencoder_warmup_steps', c.vqgan_training.autoencoder_warmup_steps],
    ['data.shuffle_buffer', c.data.shuffle_buffer],
    ['ema.update_after_step', c.ema.update_after_step],
    ['vqgan_training.recon_every', c.vqgan_training.recon_every],
    ['evaluation.every', c.evaluation.every],
  ];
  for (const [key, v] of nonNegativeInts)
    if (!Number.isInteger(v) || v < 0) fail(key, `must be an integer >= 0, got ${v}`);
  if (!Number.isInteger(c.ema.update_every) || c.ema.update_every < 1)
    fail('ema.update_every', `must be a positive integer, got ${c.ema.update_every}`);
  const fractions: Array<[string, number]> = [
    ['training.cond_dropout_prob', t.cond_dropout_prob],
    ['training.min_masking_rate', t.min_masking_rate],
    ['training.label_smoothing', t.label_smoothing],
    ['ema.decay', c.ema.decay],
    ['ema.min_decay', c.ema.min_decay],
    ['optimizer.beta1', c.optimizer.beta1],
    ['optimizer.beta2', c.optimizer.beta2],
  ];
  for (const [key, v] of fractions) if (!(v >= 0 && v <= 1)) fail(key, `must be in [0, 1], got ${v}`);
  if (!(c.optimizer.lr > 0)) fail('optimizer.lr', `must be > 0, got ${c.optimizer.lr}`);
  if (!(c.optimizer.weight_decay >= 0)) fail('optimizer.weight_decay', `must be >= 0, got ${c.optimizer.weight_decay}`);
  if (t.max_grad_norm !== null && !(t.max_grad_norm > 0))
    fail('training.max_grad_norm', `must be > 0 or null, got ${t.max_grad_norm}`);
  if (t.mixed_precision !== 'no') {
    fail(
      'training.mixed_precision',
      `is '${t.mixed_precision}', but TensorFlow.js computes in float32 only: set it to 'no' ` +
        '(weights and caches may still be stored as float16)',
    );
  }
  try {
    maskSchedule(t.mask_schedule);
  } catch (err) {
    fail('training.mask_schedule', (err as Error).message);
  }
  const ev = c.evaluation;
  if (ev.every) {
    if (ev.every % t.save_every !== 0)
      fail(
        'evaluation.every',
        `must be a multiple of training.save_every (${t.save_every}): evaluation samples the checkpoint saved at that step, got ${ev.every}`,
      );
    if (!ev.prompts) fail('evaluation.prompts', 'must name a prompt file when evaluation.every is set');
    if (!ev.real && !ev.clip)
      fail('evaluation.real', 'or evaluation.clip must be set when evaluation.every is set (nothing to measure)');
    if (!Number.isInteger(ev.num_images) || ev.num_images < 2)
      fail('evaluation.num_images', `must be an integer >= 2 (FID needs 2 images), got ${ev.num_images}`);
    if (c.stage === 'vqgan')
      fail('evaluation.every', 'is for the transformer stages (the vqgan stage samples nothing)');
  }
  for (const s of c.data.validation_shards)
    if (!Number.isInteger(s) || s < 0) fail('data.validation_shards', `must list shard indices, got ${s}`);
  const paths = Array.isArray(c.data.path) ? c.data.path : [c.data.path];
  if (!paths.length || paths.some((p) => !p)) fail('data.path', 'must name a dataset folder');
  if (c.data.weights && c.data.weights.length !== paths.length) {
    fail('data.weights', `has ${c.data.weights.length} entries for ${paths.length} dataset(s) in data.path`);
  }

  if (c.stage === 'vqgan') {
    let vq: ReturnType<typeof configFromJson> | undefined;
    try {
      vq = configFromJson({ ...c.model.vqgan, resolution: c.model.vqgan.resolution ?? c.data.resolution });
    } catch (err) {
      fail('model.vqgan', (err as Error).message);
    }
    const crop = c.data.random_crop;
    if (crop !== null && vq) {
      const f = derived(vq).reductionFactor;
      if (!Number.isInteger(crop) || crop < f || crop > vq.resolution || crop % f !== 0) {
        fail(
          'data.random_crop',
          `must be null or a multiple of the VQGAN's downsampling factor ${f} between ${f} and the resolution ${vq.resolution}, got ${crop}`,
        );
      }
    }
  } else {
    try {
      checkTokenModelConfig(c.model.architecture, c.model.transformer);
    } catch (err) {
      fail('model.transformer', (err as Error).message);
    }
    const superres = c.model.architecture === 'superres';
    if (superres !== (c.stage === 'superres512')) {
      fail(
        'model.architecture',
        superres
          ? `superres is the superres512 stage's model, not ${c.stage}'s`
          : `the superres512 stage trains the super-res model: set model.architecture: superres`,
      );
    }
    if (superres && !c.model.lowres_vq)
      fail('model.lowres_vq', 'the superres512 stage needs the base VQGAN whose low-res tokens condition it');
    const classCond = c.model.transformer.num_classes != null;
    if (!classCond && !c.model.text_encoder)
      fail('model.text_encoder', 'must be set for a text-conditioned stage (or set model.transformer.num_classes)');
    const specs = textEncoderSpecs(c.model.text_encoder ?? '').map((s): TextEncoderSpec => {
      try {
        return parseTextEncoderSpec(s);
      } catch (err) {
        return fail('model.text_encoder', (err as Error).message);
      }
    });
    if (specs.length > 1) {
      // Combined conditioning: one T5 (states) and one CLIP (states + pooled vector), e.g. t5:DIR,clip:DIR.
      const clip = specs.filter((s) => s.kind === 'clip').length;
      if (specs.length !== 2 || clip !== 1)
        fail(
          'model.text_encoder',
          `'${c.model.text_encoder}': combined conditioning takes exactly two encoders, one T5 (t5:DIR or byt5-tiny) and one CLIP (clip:DIR), comma-separated`,
        );
      if (superres)
        fail(
          'model.text_encoder',
          'the superres512 stage conditions on one text encoder; combined T5 + CLIP conditioning is for the base stages',
        );
    }
  }
}

export function isStage(s: string): s is Stage {
  return (STAGES as readonly string[]).includes(s);
}
