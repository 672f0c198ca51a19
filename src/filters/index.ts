export { createRecordFilter, prepareRecordFilter, type FilterVerdict } from './record-filter.ts';
export { createCaptionFilter, hasCaptionRules, type CaptionVerdict } from './caption.ts';
export { checkMetadataRule, type RuleVerdict } from './metadata.ts';
export { cleanCaption } from './text.ts';
export { replacePersonTokens } from './person-token.ts';
export { detectLanguage, loadLanguageDetector, supportedLanguages } from './language.ts';
export { loadBannedWords, createBannedMatcher } from './banned-words.ts';
