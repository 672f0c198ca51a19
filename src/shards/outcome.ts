/** What happened to one input row. Every row ends in exactly one status; nothing disappears silently. */
export const SAMPLE_STATUSES = ['ok', 'fallback', 'filtered', 'duplicate', 'opted_out', 'failed'] as const;
export type SampleStatus = (typeof SAMPLE_STATUSES)[number];

export interface EncodedImage {
  data: Buffer;
  ext: 'jpg' | 'webp' | 'png';
  width: number;
  height: number;
}

export interface SampleOutcome {
  key: string;
  row: number;
  url: string;
  caption: string | null;
  cls?: number;
  meta: Record<string, unknown>;
  status: SampleStatus;
  /**
   * Machine-readable cause for anything but `ok` (filter rule, HTTP reason, ...). Download reasons come from
   * src/fetch/: e.g. `http_404`, `connect_timeout`, `first_byte_timeout`, `timeout`, `connection_reset`, and
   * `host_unresponsive` (never requested: its origin was cut off; `error` says when and why).
   */
  reason: string | null;
  /** Human-readable detail. */
  error: string | null;
  /** Present for `ok` and `fallback`: what goes into the tar. */
  image?: EncodedImage;
  originalWidth?: number;
  originalHeight?: number;
  /** sha256 (hex) of the downloaded bytes, and 64-bit dHash (16 hex) of the image. */
  sha256?: string;
  phash?: string;
  /** Size of the downloaded file in bytes. */
  bytes?: number;
}

/** True when the sample is written to the tar. */
export function hasImage(o: SampleOutcome): o is SampleOutcome & { image: EncodedImage } {
  return o.image !== undefined && (o.status === 'ok' || o.status === 'fallback');
}
