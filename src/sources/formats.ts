/** The input formats a source reads (pipeline `input.format`, `fetch --input-format`): the one list. */
export const INPUT_FORMATS = ['parquet', 'tsv', 'csv', 'jsonl', 'imagenet'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];
