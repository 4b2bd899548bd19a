import { BridgeTowerError } from '../../common/errors.js';

/** Why a graph cannot be differentiated; `code` is stable so a trainer can map it. */
export class AutodiffError extends BridgeTowerError {
  constructor(code: 'E_NO_GRADIENT_RULE' | 'E_GRADIENT_UNSUPPORTED' | 'E_GRADIENT_TARGET', message: string) {
    super(code, message);
  }
}
