import { HttpError } from '../schemas/errors.js';
import type { ImageInput } from '../schemas/fields.js';

const DATA_URL = /^data:([^,]*),/i;
// Standard and URL-safe alphabets, optional padding.
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * An image field's bytes: a file part as is, a string as base64 or a base64 data URL. Bad base64
 * is a 400 and an image over the limit a 413, both before decoding; whether the bytes are an
 * image is the runtime's question (400 / 413 / 415 from its image errors).
 */
export function decodeImage(input: ImageInput, field: string, maxBytes: number): Uint8Array {
  if (input instanceof Uint8Array) {
    if (input.byteLength > maxBytes) throw tooLarge(field, input.byteLength, maxBytes);
    return input;
  }
  let text = input;
  const dataUrl = DATA_URL.exec(text.slice(0, 512));
  if (dataUrl) {
    if (!/;base64$/i.test(dataUrl[1] ?? '')) {
      throw new HttpError('E_BAD_BASE64', `${field} is a data URL without ';base64': send data:<type>;base64,<data>`);
    }
    text = text.slice(dataUrl[0].length);
  }
  if (/\s/.test(text)) text = text.replace(/\s+/g, '');
  if (text.length === 0 || !BASE64.test(text) || text.length % 4 === 1) {
    const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
    throw new HttpError('E_BAD_BASE64', `${field} is not base64 (${JSON.stringify(shown)}, ${text.length} characters): send the image's bytes in base64 or as a data URL, or as a multipart file part`);
  }
  const estimated = Math.floor((text.length * 3) / 4);
  if (estimated - 2 > maxBytes) throw tooLarge(field, estimated, maxBytes);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.byteLength > maxBytes) throw tooLarge(field, bytes.byteLength, maxBytes);
  return bytes;
}

function tooLarge(field: string, bytes: number, maxBytes: number): HttpError {
  return new HttpError('E_TOO_LARGE', `${field} has ${bytes} bytes; the limit is ${maxBytes} bytes per image: send a smaller image`);
}
