import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { BundleService } from '../../server/scheduling/bundle-service.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/options.js';
import { tempDir } from '../helpers/temp-dir.js';
import { tinyWeights, writeTextConfig, writeTinyCkpt } from '../helpers/tiny-checkpoints.js';

it('a bundle without a tokenizer is refused at start-up with the fix in the message', async (t) => {
  const dir = tempDir(t);
  const { arch, weights } = tinyWeights();
  const bundle = join(dir, 'no-tokenizer');
  await convertCheckpoint({ checkpoint: writeTinyCkpt(dir, weights), out: bundle, textConfig: writeTextConfig(dir, arch) });
  assert.throws(
    () => BundleService.create(bundle, DEFAULT_SERVER_OPTIONS),
    (error: any) => error.code === 'E_BUNDLE' && /no tokenizer\.json/.test(error.message) && /--tokenizer/.test(error.message),
  );
});
