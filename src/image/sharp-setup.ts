import sharp from 'sharp';

/**
 * Process-wide libvips settings for a fetch worker; call once at start-up. `threads` = libvips
 * threads per image (sharp's default is 1 on glibc without jemalloc, else the core count). The
 * operation cache is off: every image is seen once, so caching only holds memory.
 */
export function configureSharp(opts: { threads?: number; cache?: boolean } = {}): void {
  if (opts.threads !== undefined) sharp.concurrency(opts.threads);
  if (!opts.cache) sharp.cache(false);
}
