/**
 * The demo's text encoder: a T5 encoder directory in the Hugging Face layout (config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json), so the tokenize stage reads it with `--text t5:DIR` exactly as it reads
 * a real T5 checkpoint, and the transformer trains on its frozen cached states.
 *
 * What it is: a whole-word vocabulary of the fetched dataset's captions (a WordPiece model whose entries are
 * whole words, `<unk>` for any other word; @huggingface/tokenizers has no WordLevel model) and a one-layer T5 of
 * width 128 with random weights from a fixed seed — not trained. Why: with one token per word, the colour word's
 * state is mostly that word (plus its neighbours, through attention with a local random position bias), so
 * "red" in an unseen "a red triangle" looks like "red" in the "a red circle" the transformer trained on. The
 * byte-level built-in (byt5-tiny) spreads each word over 3-10 byte states mixed with their neighbours.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { T5Encoder, type T5Config } from '../models/text/t5.ts';
import { BYT5_TINY_CONFIG, BYT5_TINY_RELATIVE_BIAS_STD } from '../models/text/encoders.ts';
import { writeFileAtomic } from '../util/atomic.ts';

const SPECIALS = ['<pad>', '</s>', '<unk>'] as const;

/** The built-in byt5-tiny's T5 settings, narrower and one layer deep (vocab_size is set from the captions). */
export const DEMO_TEXT_CONFIG: Partial<T5Config> = {
  ...BYT5_TINY_CONFIG,
  d_model: 128,
  d_kv: 32,
  d_ff: 256,
  num_layers: 1,
};

/** Lower-cased words of the captions, sorted (the vocabulary after the specials). */
export function captionWords(captions: Iterable<string>): string[] {
  const words = new Set<string>();
  for (const c of captions) for (const w of c.toLowerCase().split(/[^\p{L}\p{N}]+/u)) if (w) words.add(w);
  return [...words].sort();
}

/** `tokenizer.json` (Hugging Face tokenizers format) for a whole-word vocabulary; T5's `</s>` appended. */
export function wordTokenizerJson(words: string[]): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  [...SPECIALS, ...words].forEach((w, i) => {
    vocab[w] = i;
  });
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, i) => special(s, i)),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: null,
    model: {
      type: 'WordPiece',
      unk_token: '<unk>',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

/** Writes the encoder directory for `captions` into `dir`; returns the vocabulary size. */
export async function writeDemoTextEncoder(
  dir: string,
  captions: Iterable<string>,
  seed = 0,
): Promise<{ vocab: number; dim: number; description: string }> {
  const words = captionWords(captions);
  if (!words.length) throw new Error('demo text encoder: the dataset has no captions to take a vocabulary from');
  await mkdir(dir, { recursive: true });
  const vocab = SPECIALS.length + words.length;
  const model = new T5Encoder(
    { ...DEMO_TEXT_CONFIG, vocab_size: vocab },
    { seed, relativeBiasStd: BYT5_TINY_RELATIVE_BIAS_STD },
  );
  try {
    await model.save(dir);
  } finally {
    model.dispose();
  }
  await writeFileAtomic(path.join(dir, 'tokenizer.json'), JSON.stringify(wordTokenizerJson(words)) + '\n');
  await writeFile(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ pad_token: '<pad>', eos_token: '</s>', unk_token: '<unk>', model_max_length: 64 }) + '\n',
  );
  const c = DEMO_TEXT_CONFIG;
  return {
    vocab,
    dim: c.d_model!,
    description: `word-level T5 encoder, ${c.num_layers} layer(s) of width ${c.d_model}, random weights (seed ${seed}), not trained`,
  };
}
