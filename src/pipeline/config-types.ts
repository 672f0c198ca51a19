/** The shape of a pipeline file (`pipelines/*.yaml`) after defaults are applied. Keys are snake_case as in YAML. */

import type { InputFormat } from '../sources/formats.ts';
import type { EncodeFormat } from '../image/encode.ts';
import type { ResizeMode } from '../image/geometry.ts';
import type { PersonToken } from '../filters/person-token.ts';

/** What a shard job does with a row whose image cannot be had (pipeline `dead_links`, `fetch --dead-links`): the one list. */
export const DEAD_LINK_MODES = ['fallback', 'skip'] as const;
export type DeadLinks = (typeof DEAD_LINK_MODES)[number];

export interface InputConfig {
  /** Files or glob patterns; `${data_root}` and `${project}` are expanded. Read in sorted order. */
  files: string[];
  format: InputFormat;
  /** tsv/csv: whether the first line is a header. */
  header: boolean;
  /** tsv/csv without header: the column names in order (e.g. CC12M `[url, caption]`, CC3M `[caption, url]`). */
  columns?: string[];
  url_col: string;
  /** Absent for datasets without captions (ImageNet). */
  caption_col?: string;
  /**
   * Source columns kept as record meta (and written to each sample's JSON). Absent = every column except
   * the URL and caption columns.
   */
  meta_cols?: string[];
}

export interface CaptionFilterConfig {
  min_chars?: number;
  max_chars?: number;
  min_words?: number;
  max_words?: number;
  /** Reject when the most frequent word makes up more than this fraction of the words (CC12M: 0.2). */
  max_word_repetition?: number;
  /** ISO 639-1 codes accepted by the language detector (eld); absent = no language filter. */
  languages?: string[];
  /** A text file, one banned word or phrase per line (`#` comments); matched on word boundaries, case-insensitive. */
  banned_words_file?: string;
  /** CC12M's `<PERSON>` token: keep it, replace it with "a person", or drop the row. */
  person_token?: PersonToken;
}

/** A metadata rule on one source column, checked before download. `name` is recorded as the rejection reason. */
export interface MetadataRule {
  name: string;
  column: string;
  min?: number;
  max?: number;
  /** String values that reject the row (e.g. LAION `NSFW: [NSFW, UNSURE]`). */
  reject_values?: string[];
  /** Values outside [valid_min, valid_max] are corrupt (LAION similarity up to 6016): the row is rejected as such. */
  valid_min?: number;
  valid_max?: number;
  /** What to do when the column is null or absent in a row: keep (default) or reject. */
  missing?: 'keep' | 'reject';
}

export interface ImageConfig {
  size: number;
  resize_mode: ResizeMode;
  resize_only_if_bigger: boolean;
  encode_format: EncodeFormat;
  encode_quality: number;
  /** Smallest side of the original, in pixels; smaller images are filtered. 0 = off. */
  min_image_size: number;
  /** max(w,h)/min(w,h) of the original; larger is filtered. 0 = off. */
  max_aspect_ratio: number;
  /** w*h of the original; larger is refused from the header, never decoded. */
  max_image_area: number;
  /** Downloaded files smaller than this are filtered (LAION: 5 KB). 0 = off. */
  min_file_bytes: number;
}

export interface DownloadConfig {
  /** Parallel downloads per worker process. */
  concurrency: number;
  /** DNS + TCP + TLS handshake. */
  connect_timeout_s: number;
  /** From the start of an attempt to the first response's headers. */
  first_byte_timeout_s: number;
  /** Whole request including body. */
  timeout_s: number;
  /** Extra attempts for transient failures (resets, 5xx, 429; a timeout only on an origin not already timing out). */
  retries: number;
  /** Consecutive timeouts or refused connections after which an origin's other rows end `host_unresponsive`; 0 = never. */
  origin_cutoff_after: number;
  /** Seconds a cut-off origin gets no request before one probe. */
  origin_cooldown_s: number;
  /** Requests at once to one origin (per worker process). */
  per_origin_concurrency: number;
  max_redirects: number;
  max_bytes: number;
  user_agent_token: string;
  /** X-Robots-Tag directives that forbid use (img2dataset default: noai, noimageai, noindex, noimageindex). */
  disallowed_header_directives: string[];
  /** Honour the TDMRep header `tdm-reservation: 1`. */
  respect_tdm_reservation: boolean;
  /** Allow destinations on private, loopback or link-local addresses (off by default: SSRF guard). */
  allow_private_network: boolean;
}

export interface PipelineConfig {
  name: string;
  description?: string;
  input: InputConfig;
  filters: { caption: CaptionFilterConfig; metadata: MetadataRule[] };
  image: ImageConfig;
  download: DownloadConfig;
  dead_links: DeadLinks;
  samples_per_shard: number;
  /**
   * Bundled sample only: start the sample image server (src/sample-data/server.ts) on 127.0.0.1 for the run
   * and send URLs starting with `url_prefix` there. The recorded URL keeps the prefix, so outputs do not
   * depend on the port.
   */
  local_server?: { url_prefix: string };
}
