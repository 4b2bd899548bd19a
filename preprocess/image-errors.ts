import { BridgeTowerError, type ErrorCode } from '../common/errors.js';

/** Why an image was refused, and the error code (hence HTTP status and exit code) of each reason. */
export const IMAGE_ERROR_REASONS = {
  /** The bytes claim a supported format but do not decode: truncated, corrupt, empty. */
  decode: 'E_IMAGE_DECODE',
  /** Too many encoded bytes or too many pixels (decompression bomb), checked before decoding. */
  too_large: 'E_IMAGE_TOO_LARGE',
  /** Not one of the accepted formats (JPEG, PNG, WebP, GIF, TIFF, AVIF). */
  unsupported: 'E_IMAGE_UNSUPPORTED',
} as const satisfies Record<string, ErrorCode>;

export type ImageErrorReason = keyof typeof IMAGE_ERROR_REASONS;

/** A refused input image. `details` always holds `reason` and, where known, `format`. */
export class ImageError extends BridgeTowerError {
  constructor(
    readonly reason: ImageErrorReason,
    message: string,
    details: Record<string, unknown> = {},
  ) {
    super(IMAGE_ERROR_REASONS[reason], message, { reason, ...details });
  }
}
