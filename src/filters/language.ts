// Language id with eld's 'extrasmall' database: ~0.2 s to load, ~40 MB, once per process. On short captions it
// scored the same as 'small'/'medium' in our check (README: 99.3% vs 99.4% on tweets). Loaded only when a
// pipeline has a language rule (eld is an ES module with top-level data, so it is imported on demand).
type Detector = { detect(text: string): { language: string }; info(): { Languages: Record<string, string> } };

let detector: Detector | undefined;
let supported: ReadonlySet<string> | undefined;

/** Loads the detector (once). Must be awaited before a filter with `languages` is created. */
export async function loadLanguageDetector(): Promise<void> {
  if (detector) return;
  const { eld } = await import('eld/extrasmall');
  const d = eld.newInstance();
  d.enableTextCleanup(true); // ignore URLs, e-mails and the like inside captions
  detector = d as unknown as Detector;
  supported = new Set(Object.values(detector.info().Languages));
}

function loaded(): Detector {
  if (!detector)
    throw new Error('language detector not loaded: await loadLanguageDetector() before creating the filter');
  return detector;
}

/** ISO 639-1 codes eld can return. */
export function supportedLanguages(): ReadonlySet<string> {
  loaded();
  return supported!;
}

/** Detected ISO 639-1 code of a text, or '' when eld cannot tell. */
export function detectLanguage(text: string): string {
  return loaded().detect(text).language;
}

/** Checks configured codes up front, so a typo fails at start-up, not as "every caption rejected". */
export function checkLanguageCodes(codes: string[]): void {
  const known = supportedLanguages();
  const unknown = codes.filter((c) => !known.has(c));
  if (unknown.length > 0) {
    throw new Error(
      `caption filter languages: ${unknown.map((c) => `'${c}'`).join(', ')} not supported by eld ` +
        `(supported: ${[...known].sort().join(', ')})`,
    );
  }
}
