import { loadNativeAdamW } from '../../train/optimizer/adamw-native.js';

/**
 * Why the native AdamW addon cannot be tested here, or undefined when it is built. Outside CI its
 * tests skip with the reason and the build command (a clone without a C compiler still tests); with
 * `CI` set a missing addon throws, since CI installs with `npm ci`, which builds it.
 */
export function nativeAdamWAbsence(): string | undefined {
  const load = loadNativeAdamW();
  if (!('reason' in load)) return undefined;
  const message = `${load.reason}: run \`npm run build:native\``;
  if (process.env.CI) throw new Error(`${message}; CI's npm ci must build it`);
  return `${message} — skipped outside CI`;
}

/** Skips the test (outside CI) when the addon is not built; see `nativeAdamWAbsence`. */
export function nativeAdamWMissing(t: { skip(message?: string): void }): boolean {
  const absence = nativeAdamWAbsence();
  if (absence) t.skip(absence);
  return absence !== undefined;
}

/** The native kernels this CPU runs (empty when the addon is not built). */
export function nativeKernels(): string[] {
  const load = loadNativeAdamW();
  return 'reason' in load ? [] : load.kernels;
}
