/**
 * The image stage alone, for `npm run bench -- fetch`: one process (bench/fetch.ts forks one per core) reads its
 * share of the bench images into memory, waits for 'go', then runs the pipeline's own image transform
 * (`createImageProcessor`: header check, decode + resize + crop, dHash, encode, sha256) over them with a fixed
 * concurrency. CPU is this process's user+sys time (all threads, incl. libvips and libuv's pool) over the
 * processing window only: no start-up, no file reads, no HTTP, no tar.
 *
 * IPC: { type: 'load', files, image, concurrency } -> { type: 'loaded' }; { type: 'go' } ->
 * { type: 'result', ... }.
 */
import { readFile } from 'node:fs/promises';
import type { ImageConfig } from '../src/pipeline/config-types.ts';
import { createImageProcessor } from '../src/image/index.ts';

export type ToImageStage = { type: 'load'; files: string[]; image: ImageConfig; concurrency: number } | { type: 'go' };
export type FromImageStage =
  | { type: 'loaded'; bytes: number }
  | {
      type: 'result';
      images: number;
      ok: number;
      failed: number;
      wallMs: number;
      cpuMs: number;
      maxRssKb: number;
      firstError?: string;
    };

if (process.send) {
  process.on('disconnect', () => process.exit(0));
  let inputs: Buffer[] = [];
  let image: ImageConfig | undefined;
  let concurrency = 8;
  process.on('message', async (m: ToImageStage) => {
    if (m.type === 'load') {
      inputs = await Promise.all(m.files.map((f) => readFile(f)));
      image = m.image;
      concurrency = m.concurrency;
      process.send!({ type: 'loaded', bytes: inputs.reduce((n, b) => n + b.length, 0) } satisfies FromImageStage);
      return;
    }
    const processImage = createImageProcessor(image!);
    let ok = 0;
    let failed = 0;
    let firstError: string | undefined;
    let next = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let i = next++; i < inputs.length; i = next++) {
          const r = await processImage(inputs[i]);
          if (r.ok) ok++;
          else {
            failed++;
            firstError ??= `${r.reason}: ${r.error}`;
          }
        }
      }),
    );
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    process.send!({
      type: 'result',
      images: inputs.length,
      ok,
      failed,
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      maxRssKb: process.resourceUsage().maxRSS,
      ...(firstError ? { firstError } : {}),
    } satisfies FromImageStage);
  });
}
