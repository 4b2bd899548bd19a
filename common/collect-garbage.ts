import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | undefined;

/**
 * Runs V8's full garbage collection now, whether or not Node was started with --expose-gc.
 *
 * Why training needs it: onnxruntime-node 1.30 hands every fetched output back as a fresh copy,
 * even one fetched into a preallocated tensor (its binding's Run converts each output value with a
 * copy after ONNX Runtime wrote the preallocated buffer). A training step's gradients therefore
 * come back twice; the copy (1.36 GB for BASE `--train all`) is garbage at once, but V8 frees an
 * ArrayBuffer only at a major collection, which may come halfway through the next step's forward:
 * that step's peak then holds the last step's copy (measured: micro-batch 2, step 1 8.59 GB, step 2
 * 10.27 GB). Collecting as soon as the run returns frees the copy before the next forward.
 */
export function collectGarbage(): void {
  if (!collect) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) collect = exposed;
    else {
      // The flag exposes `gc` to contexts created after it is set; the main context keeps its globals.
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as () => void;
    }
  }
  collect();
}
