import type { MetadataRule } from '../pipeline/config-types.ts';

export type RuleVerdict = { ok: true } | { ok: false; rule: string; reason: string };

const PASS: RuleVerdict = { ok: true };

/** Null, undefined and blank strings (CSV/TSV cells) count as missing. */
function isMissing(v: unknown): boolean {
  return v === null || v === undefined || (typeof v === 'string' && v.trim() === '');
}

/** Numbers, bigints (parquet int64) and numeric strings; anything else -> NaN. */
function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') return Number(v.trim());
  return NaN;
}

function show(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : String(v);
}

/** Checks one source column of a row. Order: missing, reject_values, valid range, min, max. */
export function checkMetadataRule(rule: MetadataRule, meta: Record<string, unknown>): RuleVerdict {
  const fail = (reason: string): RuleVerdict => ({ ok: false, rule: rule.name, reason });
  const value = meta[rule.column];
  if (isMissing(value)) {
    return rule.missing === 'reject' ? fail(`${rule.column} is missing`) : PASS;
  }

  if (rule.reject_values && rule.reject_values.length > 0) {
    // tags compared trimmed and case-insensitively: 'nsfw', 'NSFW ' and 'NSFW' are the same tag
    const tag = String(value).trim().toUpperCase();
    if (rule.reject_values.some((r) => r.trim().toUpperCase() === tag)) {
      return fail(`${rule.column} ${show(value)} is one of the rejected values [${rule.reject_values.join(', ')}]`);
    }
  }

  const numeric = [rule.min, rule.max, rule.valid_min, rule.valid_max].some((x) => x !== undefined);
  if (!numeric) return PASS;
  const x = toNumber(value);
  if (!Number.isFinite(x)) return fail(`${rule.column} ${show(value)} is not a number`);
  if ((rule.valid_min !== undefined && x < rule.valid_min) || (rule.valid_max !== undefined && x > rule.valid_max)) {
    return fail(`${rule.column} ${x} outside valid range [${rule.valid_min ?? '-inf'}, ${rule.valid_max ?? 'inf'}]`);
  }
  if (rule.min !== undefined && x < rule.min) return fail(`${rule.column} ${x} < min ${rule.min}`);
  if (rule.max !== undefined && x > rule.max) return fail(`${rule.column} ${x} > max ${rule.max}`);
  return PASS;
}
