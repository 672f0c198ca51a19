// Per-step guidance scale and sampling temperature of MaskGIT decoding (open-muse `generate2`).

export type GuidanceSchedule = 'constant' | 'linear' | 'cosine';
export const GUIDANCE_SCHEDULES: readonly GuidanceSchedule[] = ['constant', 'linear', 'cosine'];

/**
 * Guidance scale at step `step` of `steps` (g = the requested scale):
 *   constant: g
 *   linear:   g * step / (steps - 1)   (open-muse `torch.linspace(0, g, steps)`: no guidance at the first step, g at the last)
 *   cosine:   g * cos(pi/2 * (1 - (step + 1) / steps))   (open-muse's cosine ramp, rising to g at the last step)
 * open-muse floors the cosine values to integers; we do not, because flooring turns any g < 1 into 0 and
 * makes fractional scales meaningless. With one step every schedule gives g.
 */
export function guidanceAt(schedule: GuidanceSchedule, scale: number, step: number, steps: number): number {
  if (schedule === 'constant' || steps <= 1) return scale;
  if (schedule === 'linear') return (scale * step) / (steps - 1);
  if (schedule === 'cosine') return scale * Math.cos((Math.PI / 2) * (1 - (step + 1) / steps));
  throw new Error(`unknown guidance schedule '${String(schedule)}' (expected ${GUIDANCE_SCHEDULES.join(', ')})`);
}

/**
 * Gumbel-noise temperature at step `step` of `steps`. `[start, end]`: linear from start (first step) to end
 * (last step), as diffusers' AmusedScheduler. A single number t: t * (1 - (step + 1) / steps), as open-muse's
 * `mask_by_random_topk(..., temperature * (1.0 - ratio))`, so it reaches 0 at the last step.
 */
export function temperatureAt(temperature: number | readonly [number, number], step: number, steps: number): number {
  if (typeof temperature === 'number') return temperature * (1 - (step + 1) / steps);
  const [start, end] = temperature;
  return steps <= 1 ? start : start + ((end - start) * step) / (steps - 1);
}

/** Parses `--temperature`: "t" or "start,end". */
export function parseTemperature(text: string): number | [number, number] {
  const parts = text.split(',').map((s) => s.trim());
  const nums = parts.map(Number);
  if (
    (parts.length !== 1 && parts.length !== 2) ||
    parts.some((p) => p === '') ||
    nums.some((n) => !Number.isFinite(n) || n < 0)
  ) {
    throw new Error(`--temperature '${text}': expected a number >= 0 or two of them as start,end (e.g. 2,0)`);
  }
  return nums.length === 1 ? nums[0] : [nums[0], nums[1]];
}
