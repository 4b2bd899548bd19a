import { loadNativeAdamW } from '../../train/optimizer/adamw-native.js';

/**
 * Whether the native AdamW addon is built here. Outside CI its tests skip with the reason and the
 * build command (a clone without a C compiler still tests); with `CI` set a missing addon fails
 * them, since CI installs with `npm ci`, which builds it.
 */
export function nativeAdamWMissing(t: { skip(message?: string): void }): boolean {
  const load = loadNativeAdamW();
  if (!('reason' in load)) return false;
  const message = `${load.reason}: run \`npm run build:native\``;
  if (process.env.CI) throw new Error(`${message}; CI's npm ci must build it`);
  t.skip(`${message} — skipped outside CI`);
  return true;
}

/** The native kernels this CPU runs (empty when the addon is not built). */
export function nativeKernels(): string[] {
  const load = loadNativeAdamW();
  return 'reason' in load ? [] : load.kernels;
}
