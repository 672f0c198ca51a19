/**
 * The core both YAML configurations share (pipeline files, src/pipeline/config.ts; training configs,
 * src/train/config/load.ts): parsing a file into a mapping, merging layers, and the error for an unknown key with
 * a did-you-mean suggestion. Every message names the file (or flag) and the key.
 */
import YAML from 'yaml';
import { closestName } from './suggest.ts';

export class ConfigError extends Error {}

export type ConfigTree = Record<string, unknown>;

export function isPlainObject(v: unknown): v is ConfigTree {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** YAML text -> its top-level mapping; `what` says what the mapping holds, for the error. */
export function parseYamlMapping(text: string, file: string, what = 'at the top level'): ConfigTree {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML (${(err as Error).message})`);
  }
  if (!isPlainObject(doc)) throw new ConfigError(`${file}: expected a mapping ${what}`);
  return doc;
}

/** Deep-merges `over` into `base` (objects merge, everything else replaces; undefined is skipped). */
export function deepMerge(base: ConfigTree, over: ConfigTree): ConfigTree {
  const out: ConfigTree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

/** `<where>: unknown key 'a.b.x' (did you mean 'a.b.y'?)`, the suggestion taken from the keys allowed beside it. */
export function unknownKeyError(where: string, fullKey: string, siblings: readonly string[]): ConfigError {
  const dot = fullKey.lastIndexOf('.');
  const prefix = dot < 0 ? '' : fullKey.slice(0, dot + 1);
  const hint = closestName(fullKey.slice(prefix.length), [...siblings]);
  return new ConfigError(`${where}: unknown key '${fullKey}'${hint ? ` (did you mean '${prefix}${hint}'?)` : ''}`);
}
