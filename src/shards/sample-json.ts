/** The `{key}.json` member of a WebDataset sample. Field order is fixed so shards are byte-reproducible. */
import type { SampleOutcome } from './outcome.ts';

export function sampleJson(o: SampleOutcome): Record<string, unknown> {
  const json: Record<string, unknown> = {
    key: o.key,
    url: o.url,
    caption: o.caption,
    status: o.status,
    width: o.image?.width ?? null,
    height: o.image?.height ?? null,
    original_width: o.originalWidth ?? null,
    original_height: o.originalHeight ?? null,
    sha256: o.sha256 ?? null,
    phash: o.phash ?? null,
  };
  if (o.cls !== undefined) json.cls = o.cls;
  if (o.status !== 'ok') {
    json.reason = o.reason;
    json.error = o.error;
  }
  json.source = toJsonSafe(o.meta);
  return json;
}

/** bigint and Date values from parquet become JSON numbers / strings. */
export function toJsonSafe(meta: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v === 'bigint') out[k] = Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    else if (v instanceof Date) out[k] = v.toISOString();
    else if (typeof v === 'number' && !Number.isFinite(v)) out[k] = null;
    else out[k] = v;
  }
  return out;
}
