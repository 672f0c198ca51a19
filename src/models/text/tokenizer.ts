// Text tokenizers for the text encoders: a Hugging Face `tokenizer.json` (CLIP BPE, T5 Unigram, ...)
// loaded with @huggingface/tokenizers from disk, and a built-in byte-level ByT5-style tokenizer.
// Truncation and padding follow transformers: content truncated to max_length minus the special tokens,
// specials added, then padded with the pad id (attention mask 0).
import { Tokenizer } from '@huggingface/tokenizers';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export type Padding = 'max_length' | 'longest';

export interface TokenizedBatch {
  /** Row-major [batch, length] ids and attention mask (1 = real token). */
  ids: Int32Array;
  mask: Int32Array;
  /** Real (unpadded) length of each row. */
  lengths: number[];
  batch: number;
  length: number;
}

export interface TokenizeOptions {
  maxLength?: number;
  padding?: Padding;
}

export abstract class TextTokenizer {
  abstract readonly name: string;
  abstract readonly padId: number;
  abstract readonly eosId: number;
  abstract readonly maxLength: number;
  abstract readonly padding: Padding;
  /** Ids without special tokens. */
  abstract contentIds(text: string): number[];
  /** Special ids added before and after the content. */
  abstract readonly prefix: number[];
  abstract readonly suffix: number[];

  /** Ids with special tokens, content truncated so the whole fits `maxLength`. */
  encode(text: string, maxLength = this.maxLength): number[] {
    const room = maxLength - this.prefix.length - this.suffix.length;
    if (room < 0) throw new Error(`maxLength ${maxLength} leaves no room for the special tokens`);
    return [...this.prefix, ...this.contentIds(text).slice(0, room), ...this.suffix];
  }

  /** Encodes, truncates and pads a batch. */
  batch(texts: string[], opts: TokenizeOptions = {}): TokenizedBatch {
    const maxLength = opts.maxLength ?? this.maxLength;
    const rows = texts.map((t) => this.encode(t, maxLength));
    const lengths = rows.map((r) => r.length);
    const length = (opts.padding ?? this.padding) === 'max_length' ? maxLength : Math.max(1, ...lengths);
    const ids = new Int32Array(rows.length * length).fill(this.padId);
    const mask = new Int32Array(rows.length * length);
    rows.forEach((r, i) => {
      ids.set(r, i * length);
      mask.fill(1, i * length, i * length + r.length);
    });
    return { ids, mask, lengths, batch: rows.length, length };
  }
}

export interface HfTokenizerOptions extends TokenizeOptions {
  /** Pad token (string) or id; default: tokenizer_config.json's pad_token, `<pad>`, then the EOS token. */
  pad?: string | number;
}

/** A `tokenizer.json` loaded with @huggingface/tokenizers (no network). */
export class HfTokenizer extends TextTokenizer {
  readonly prefix: number[];
  readonly suffix: number[];
  readonly padId: number;
  readonly eosId: number;
  readonly maxLength: number;
  readonly padding: Padding;

  constructor(
    readonly name: string,
    readonly tokenizer: Tokenizer,
    config: Record<string, unknown>,
    opts: HfTokenizerOptions = {},
  ) {
    super();
    // The post-processor's specials, found by comparing an encoding with and without them.
    const probe = 'a';
    const withSpecial = tokenizer.encode(probe).ids;
    const plain = tokenizer.encode(probe, { add_special_tokens: false }).ids;
    const at = findSub(withSpecial, plain);
    if (at < 0) throw new Error(`${name}: cannot locate the content between the special tokens`);
    this.prefix = withSpecial.slice(0, at);
    this.suffix = withSpecial.slice(at + plain.length);
    const tokenId = (t: unknown) => (typeof t === 'string' ? tokenizer.token_to_id(t) : undefined);
    const content = (t: unknown) => (t && typeof t === 'object' ? (t as { content?: unknown }).content : t);
    this.eosId = tokenId(content(config.eos_token)) ?? this.suffix[this.suffix.length - 1] ?? tokenId('</s>') ?? -1;
    const pad =
      typeof opts.pad === 'number'
        ? opts.pad
        : (tokenId(opts.pad ?? content(config.pad_token)) ?? tokenId('<pad>') ?? this.eosId);
    if (pad === undefined || pad < 0) throw new Error(`${name}: no pad token (pass one)`);
    this.padId = pad;
    const modelMax =
      typeof config.model_max_length === 'number' && config.model_max_length < 1e6
        ? config.model_max_length
        : undefined;
    this.maxLength = opts.maxLength ?? modelMax ?? 512;
    this.padding = opts.padding ?? 'longest';
  }

  /** Loads `tokenizer.json` (a file, or a directory holding it; tokenizer_config.json is read when present). */
  static async fromFile(fileOrDir: string, opts: HfTokenizerOptions = {}): Promise<HfTokenizer> {
    const stat = await fsp.stat(fileOrDir).catch(() => undefined);
    if (!stat) throw new Error(`${fileOrDir}: no such tokenizer file or directory`);
    const file = stat.isDirectory() ? path.join(fileOrDir, 'tokenizer.json') : fileOrDir;
    const json = await readJson(file);
    if (!json)
      throw new Error(`${file}: not found (a tokenizer.json is needed; SentencePiece .model files are not read)`);
    const config = (await readJson(path.join(path.dirname(file), 'tokenizer_config.json'))) ?? {};
    for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) json[key] ??= null;
    json.added_tokens ??= [];
    return new HfTokenizer(file, new Tokenizer(json, config), config, opts);
  }

  contentIds(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** What `tokenizers`' `Tokenizer.encode(text).ids` gives: specials, no truncation or padding. */
  rawIds(text: string): number[] {
    return this.tokenizer.encode(text).ids;
  }
}

/** CLIP's convention (transformers CLIPTokenizer): BOS … EOS, max_length 77, padded to 77 with the pad id. */
export async function loadClipTokenizer(fileOrDir: string, opts: HfTokenizerOptions = {}): Promise<HfTokenizer> {
  return HfTokenizer.fromFile(fileOrDir, { maxLength: 77, padding: 'max_length', ...opts });
}

/** T5's convention: content then EOS `</s>`, pad `<pad>` (id 0), padded to the longest row. */
export async function loadT5Tokenizer(fileOrDir: string, opts: HfTokenizerOptions = {}): Promise<HfTokenizer> {
  return HfTokenizer.fromFile(fileOrDir, { maxLength: 128, padding: 'longest', ...opts });
}

/** ByT5-style bytes: id = UTF-8 byte + 3, pad 0, EOS 1 (appended), unk 2; needs no files. */
export class ByteTokenizer extends TextTokenizer {
  readonly name = 'byt5-bytes';
  readonly padId = 0;
  readonly eosId = 1;
  readonly unkId = 2;
  readonly prefix: number[] = [];
  readonly suffix = [1];
  readonly maxLength: number;
  readonly padding: Padding;
  private readonly utf8 = new TextEncoder();

  constructor(opts: TokenizeOptions = {}) {
    super();
    this.maxLength = opts.maxLength ?? 256;
    this.padding = opts.padding ?? 'longest';
  }

  contentIds(text: string): number[] {
    return Array.from(this.utf8.encode(text), (b) => b + 3);
  }

  decode(ids: number[]): string {
    const bytes = ids.filter((i) => i >= 3 && i < 259).map((i) => i - 3);
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }
}

function findSub(hay: number[], needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as Record<string, unknown>;
}
