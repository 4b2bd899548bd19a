/** What the client accepts where the server takes an image: base64 (or a data URL) already, or the file's bytes. */
export type ImageData = string | Uint8Array | ArrayBuffer;

/**
 * Route bodies with every image field (`image`, `images`) also accepting bytes, which the client
 * sends as base64: `client.vqa({ image: await readFile('cat.jpg'), question })`.
 */
export type WithImageBytes<T> = T extends string | number | boolean | null | undefined
  ? T
  : T extends ReadonlyArray<infer U>
    ? Array<WithImageBytes<U>>
    : { [K in keyof T]: K extends 'image' ? (string extends T[K] ? ImageData | Exclude<T[K], string> : T[K]) : K extends 'images' ? ImageData[] : WithImageBytes<T[K]> };

/** Bytes → base64 without Node's Buffer (browsers have btoa; Node ≥ 16 too). */
export function base64(bytes: Uint8Array | ArrayBuffer): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let binary = '';
  // In chunks: String.fromCharCode(...hugeArray) overflows the call stack.
  for (let i = 0; i < view.length; i += 0x8000) binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** JSON with byte arrays as base64 (a Node Buffer too, which JSON.stringify would otherwise turn into {type, data}). */
export function jsonWithImages(body: unknown): string {
  return JSON.stringify(body, function (this: Record<string, unknown>, key, value) {
    const original = key === '' ? value : this[key];
    return original instanceof Uint8Array || original instanceof ArrayBuffer ? base64(original) : value;
  });
}
