/**
 * Pipeline configuration: a YAML file in `pipelines/`, defaults for everything it leaves out, and command-line
 * overrides in img2dataset's spirit. Validation errors name the file and the key.
 */
import { readFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DEAD_LINK_MODES, type PipelineConfig } from './config-types.ts';
import { INPUT_FORMATS } from '../sources/formats.ts';
import { ENCODE_FORMATS } from '../image/encode.ts';
import { RESIZE_MODES } from '../image/geometry.ts';
import { PERSON_TOKEN_MODES } from '../filters/person-token.ts';
import { closestName } from '../util/suggest.ts';
import { ConfigError, deepMerge, isPlainObject, parseYamlMapping, unknownKeyError } from '../util/yaml-config.ts';

export { ConfigError, deepMerge } from '../util/yaml-config.ts';

export const PIPELINE_ALIASES: Record<string, string> = { laion: 'laion2b-en' };

export const DEFAULT_DOWNLOAD: PipelineConfig['download'] = {
  concurrency: 64,
  connect_timeout_s: 5,
  first_byte_timeout_s: 5,
  timeout_s: 10,
  retries: 2,
  origin_cutoff_after: 5,
  origin_cooldown_s: 60,
  per_origin_concurrency: 32,
  max_redirects: 5,
  max_bytes: 32 * 1024 * 1024,
  user_agent_token: 'muse-data',
  disallowed_header_directives: ['noai', 'noimageai', 'noindex', 'noimageindex'],
  respect_tdm_reservation: true,
  allow_private_network: false,
};

export const DEFAULT_IMAGE: PipelineConfig['image'] = {
  size: 256,
  resize_mode: 'center_crop',
  resize_only_if_bigger: false,
  encode_format: 'jpg',
  encode_quality: 95,
  min_image_size: 0,
  max_aspect_ratio: 0,
  max_image_area: 0,
  min_file_bytes: 0,
};

const ENUMS: Record<string, readonly string[]> = {
  'input.format': INPUT_FORMATS,
  'image.resize_mode': RESIZE_MODES,
  'image.encode_format': ENCODE_FORMATS,
  dead_links: DEAD_LINK_MODES,
  'filters.caption.person_token': PERSON_TOKEN_MODES,
};

/** Every key a pipeline file may hold, with its expected type. Used to reject typos with a suggestion. */
const SCHEMA: Record<string, 'string' | 'number' | 'boolean' | 'string[]' | 'object' | 'rules'> = {
  name: 'string',
  description: 'string',
  input: 'object',
  'input.files': 'string[]',
  'input.format': 'string',
  'input.header': 'boolean',
  'input.columns': 'string[]',
  'input.url_col': 'string',
  'input.caption_col': 'string',
  'input.meta_cols': 'string[]',
  filters: 'object',
  'filters.caption': 'object',
  'filters.caption.min_chars': 'number',
  'filters.caption.max_chars': 'number',
  'filters.caption.min_words': 'number',
  'filters.caption.max_words': 'number',
  'filters.caption.max_word_repetition': 'number',
  'filters.caption.languages': 'string[]',
  'filters.caption.banned_words_file': 'string',
  'filters.caption.person_token': 'string',
  'filters.metadata': 'rules',
  image: 'object',
  'image.size': 'number',
  'image.resize_mode': 'string',
  'image.resize_only_if_bigger': 'boolean',
  'image.encode_format': 'string',
  'image.encode_quality': 'number',
  'image.min_image_size': 'number',
  'image.max_aspect_ratio': 'number',
  'image.max_image_area': 'number',
  'image.min_file_bytes': 'number',
  download: 'object',
  'download.concurrency': 'number',
  'download.connect_timeout_s': 'number',
  'download.first_byte_timeout_s': 'number',
  'download.timeout_s': 'number',
  'download.retries': 'number',
  'download.origin_cutoff_after': 'number',
  'download.origin_cooldown_s': 'number',
  'download.per_origin_concurrency': 'number',
  'download.max_redirects': 'number',
  'download.max_bytes': 'number',
  'download.user_agent_token': 'string',
  'download.disallowed_header_directives': 'string[]',
  'download.respect_tdm_reservation': 'boolean',
  'download.allow_private_network': 'boolean',
  dead_links: 'string',
  samples_per_shard: 'number',
  local_server: 'object',
  'local_server.url_prefix': 'string',
};

const RULE_KEYS: Record<string, 'string' | 'number' | 'string[]'> = {
  name: 'string',
  column: 'string',
  min: 'number',
  max: 'number',
  reject_values: 'string[]',
  valid_min: 'number',
  valid_max: 'number',
  missing: 'string',
};

/** Resolves a pipeline argument (`laion`, `coyo700m`, `./my.yaml`) to a file path, or throws listing what exists. */
export function resolvePipelinePath(nameOrPath: string, projectRoot: string): string {
  if (nameOrPath.endsWith('.yaml') || nameOrPath.endsWith('.yml') || nameOrPath.includes('/')) {
    if (!existsSync(nameOrPath)) throw new ConfigError(`pipeline file ${nameOrPath} does not exist`);
    return nameOrPath;
  }
  const name = PIPELINE_ALIASES[nameOrPath] ?? nameOrPath;
  const dir = path.join(projectRoot, 'pipelines');
  const file = path.join(dir, `${name}.yaml`);
  if (existsSync(file)) return file;
  const known = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => f.slice(0, -5))
    : [];
  const hint = closestName(nameOrPath, [...known, ...Object.keys(PIPELINE_ALIASES)]);
  throw new ConfigError(
    `unknown pipeline '${nameOrPath}'${hint ? ` (did you mean '${hint}'?)` : ''}; known: ${known.sort().join(', ')}`,
  );
}

export async function loadPipelineFile(file: string): Promise<Record<string, unknown>> {
  return parseYamlMapping(await readFile(file, 'utf8'), file);
}

/** Applies defaults to a raw pipeline document and validates it. `where` names the source in messages. */
export function resolvePipeline(raw: Record<string, unknown>, where: string): PipelineConfig {
  checkKeys(raw, '', where);
  const input = (raw.input ?? {}) as Record<string, unknown>;
  const format = (input.format as string | undefined) ?? 'parquet';
  const defaults = {
    name: 'custom',
    input: { files: [], format, header: format !== 'tsv' || input.columns === undefined, url_col: 'url' },
    filters: { caption: {}, metadata: [] },
    image: DEFAULT_IMAGE,
    download: DEFAULT_DOWNLOAD,
    dead_links: 'fallback',
    samples_per_shard: 10000,
  };
  const cfg = deepMerge(defaults, raw) as unknown as PipelineConfig;
  if (!Array.isArray(cfg.filters.metadata)) throw new ConfigError(`${where}: filters.metadata must be a list of rules`);
  cfg.filters.caption ??= {};
  validate(cfg, where);
  return cfg;
}

function checkKeys(obj: Record<string, unknown>, prefix: string, where: string): void {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    const type = SCHEMA[key];
    if (!type) {
      const siblings = Object.keys(SCHEMA)
        .filter(
          (s) => s.startsWith(prefix ? `${prefix}.` : '') && !s.slice(prefix ? prefix.length + 1 : 0).includes('.'),
        )
        .map((s) => s.slice(prefix ? prefix.length + 1 : 0));
      throw unknownKeyError(where, key, siblings);
    }
    if (v === null || v === undefined) continue;
    if (type === 'object') {
      if (!isPlainObject(v)) throw new ConfigError(`${where}: '${key}' must be a mapping`);
      checkKeys(v, key, where);
    } else if (type === 'rules') {
      if (!Array.isArray(v)) throw new ConfigError(`${where}: '${key}' must be a list of rules`);
      v.forEach((rule, i) => checkRule(rule, `${key}[${i}]`, where));
    } else {
      checkType(v, type, key, where);
    }
  }
}

function checkRule(rule: unknown, key: string, where: string): void {
  if (!isPlainObject(rule)) throw new ConfigError(`${where}: '${key}' must be a mapping`);
  for (const [k, v] of Object.entries(rule)) {
    const type = RULE_KEYS[k];
    if (!type) {
      const hint = closestName(k, Object.keys(RULE_KEYS));
      throw new ConfigError(`${where}: unknown key '${key}.${k}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
    }
    checkType(v, type, `${key}.${k}`, where);
  }
  if (typeof rule.name !== 'string' || typeof rule.column !== 'string') {
    throw new ConfigError(`${where}: '${key}' needs 'name' and 'column'`);
  }
  if (rule.missing !== undefined && rule.missing !== 'keep' && rule.missing !== 'reject') {
    throw new ConfigError(`${where}: '${key}.missing' must be keep or reject, not '${String(rule.missing)}'`);
  }
}

function checkType(v: unknown, type: string, key: string, where: string): void {
  const ok =
    type === 'string[]'
      ? Array.isArray(v) && v.every((x) => typeof x === 'string')
      : type === 'number'
        ? typeof v === 'number' && Number.isFinite(v)
        : typeof v === type;
  if (!ok)
    throw new ConfigError(
      `${where}: '${key}' must be ${type === 'string[]' ? 'a list of strings' : `a ${type}`}, got ${JSON.stringify(v)}`,
    );
}

function validate(cfg: PipelineConfig, where: string): void {
  for (const [key, allowed] of Object.entries(ENUMS)) {
    const value = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], cfg);
    if (value !== undefined && !allowed.includes(value as string)) {
      throw new ConfigError(`${where}: '${key}' must be one of ${allowed.join(', ')}, not '${String(value)}'`);
    }
  }
  const positive: Array<[string, number]> = [
    ['image.size', cfg.image.size],
    ['samples_per_shard', cfg.samples_per_shard],
    ['download.concurrency', cfg.download.concurrency],
    ['download.timeout_s', cfg.download.timeout_s],
    ['download.connect_timeout_s', cfg.download.connect_timeout_s],
    ['download.first_byte_timeout_s', cfg.download.first_byte_timeout_s],
    ['download.per_origin_concurrency', cfg.download.per_origin_concurrency],
    ['download.max_bytes', cfg.download.max_bytes],
  ];
  for (const [key, v] of positive) if (!(v > 0)) throw new ConfigError(`${where}: '${key}' must be > 0, got ${v}`);
  if (!Number.isInteger(cfg.samples_per_shard))
    throw new ConfigError(`${where}: 'samples_per_shard' must be a whole number`);
  if (cfg.image.encode_quality < 1 || cfg.image.encode_quality > 100) {
    throw new ConfigError(
      `${where}: 'image.encode_quality' must be between 1 and 100, got ${cfg.image.encode_quality}`,
    );
  }
  if (cfg.download.retries < 0 || cfg.download.max_redirects < 0)
    throw new ConfigError(`${where}: retries and max_redirects must be ≥ 0`);
  if (!Number.isInteger(cfg.download.origin_cutoff_after) || cfg.download.origin_cutoff_after < 0) {
    throw new ConfigError(
      `${where}: 'download.origin_cutoff_after' must be a whole number ≥ 0 (0 = never cut an origin off), got ${cfg.download.origin_cutoff_after}`,
    );
  }
  if (!(cfg.download.origin_cooldown_s >= 0))
    throw new ConfigError(`${where}: 'download.origin_cooldown_s' must be ≥ 0, got ${cfg.download.origin_cooldown_s}`);
  if (cfg.input.files.length === 0) {
    throw new ConfigError(`${where}: no input files: set input.files in the pipeline or pass --input FILE`);
  }
  if (cfg.input.format !== 'imagenet' && !cfg.input.url_col)
    throw new ConfigError(`${where}: input.url_col is required`);
  if (!cfg.input.header && ['tsv', 'csv'].includes(cfg.input.format) && !cfg.input.columns) {
    throw new ConfigError(
      `${where}: a ${cfg.input.format} input without header needs input.columns (e.g. [url, caption])`,
    );
  }
}
