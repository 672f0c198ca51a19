import type { CaptionFilterConfig, MetadataRule } from '../pipeline/config-types.ts';
import type { SourceRecord } from '../sources/record.ts';
import { createCaptionFilter } from './caption.ts';
import { checkMetadataRule } from './metadata.ts';
import { loadLanguageDetector } from './language.ts';

/** ok: the row goes on to download, with its cleaned caption. Else the rule that rejected it and why. */
export type FilterVerdict = { ok: true; caption: string | null } | { ok: false; rule: string; reason: string };

/**
 * The pre-download filter of a pipeline: metadata rules in config order, then the caption rules;
 * the first failing rule wins. Throws at creation (not per row) on a bad config: unreadable
 * banned-words file (resolved against `baseDir`), unknown language code. With `languages` configured,
 * the detector must be loaded first: `prepareRecordFilter` does both.
 */
export function createRecordFilter(
  cfg: { caption: CaptionFilterConfig; metadata: MetadataRule[] },
  opts: { baseDir: string },
): (rec: SourceRecord) => FilterVerdict {
  const captionFilter = createCaptionFilter(cfg.caption, opts.baseDir);
  const rules = cfg.metadata;
  return (rec) => {
    for (const rule of rules) {
      const v = checkMetadataRule(rule, rec.meta);
      if (!v.ok) return v;
    }
    return captionFilter(rec.caption);
  };
}

/** Loads what the config needs (the language detector, only when it has a language rule), then creates the filter. */
export async function prepareRecordFilter(
  cfg: { caption: CaptionFilterConfig; metadata: MetadataRule[] },
  opts: { baseDir: string },
): Promise<(rec: SourceRecord) => FilterVerdict> {
  if (cfg.caption.languages?.length) await loadLanguageDetector();
  return createRecordFilter(cfg, opts);
}
