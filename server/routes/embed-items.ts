import { listSome } from '../../common/errors.js';
import type { ModelRegistry } from '../model-registry.js';
import type { EmbedInput, ModelService, RequestContext } from '../model-service.js';
import { HttpError } from '../schemas/errors.js';
import type { EmbedKind } from '../schemas/embeddings.js';
import type { ImageInput } from '../schemas/fields.js';

/** What /embed and /v1/embeddings share: items → service inputs, the pair check, the kinds. */

export interface EmbedItemBody {
  text?: string | undefined;
  image?: ImageInput | undefined;
}

export const kindOf = (item: EmbedInput): EmbedKind => (item.image === undefined ? 'text' : item.text === undefined ? 'image' : 'pair');

/** Decodes each item's image; `field` names item i in error messages (`inputs[3]`). */
export function embedInputs(items: readonly EmbedItemBody[], decode: (image: ImageInput, field: string) => Uint8Array, field: (i: number) => string): EmbedInput[] {
  return items.map((item, i): EmbedInput => {
    const image = item.image === undefined ? undefined : decode(item.image, `${field(i)}.image`);
    if (image && item.text !== undefined) return { text: item.text, image };
    if (image) return { image };
    return { text: item.text! };
  });
}

/**
 * A pair needs Hugging Face's cross-modal ITC head: asking another bundle is a 422 that names the
 * served bundles that can (checked before any work, so a batch fails whole, not half-embedded).
 */
export function checkPairs(registry: ModelRegistry, service: ModelService, items: readonly EmbedInput[], field: (i: number) => string): void {
  const at = items.findIndex((item) => kindOf(item) === 'pair');
  if (at < 0 || service.embedsPairs) return;
  const able = registry.services.filter((s) => s.embedsPairs).map((s) => `'${s.name}'`);
  throw new HttpError(
    'E_INVALID_FIELDS',
    `${field(at)}: model '${service.name}' cannot embed an image–text pair (it has no itc_cross_modal_head, which only Hugging Face BridgeTowerForContrastiveLearning checkpoints have); ` +
      (able.length > 0 ? `served models that can: ${listSome(able)}` : 'no served model can: convert such a checkpoint (e.g. BridgeTower/bridgetower-large-itm-mlm-itc), or embed the text and the image separately'),
  );
}

/** Embeds the items as one request; the embeddings come back in request order. */
export async function embedAll(registry: ModelRegistry, service: ModelService, items: readonly EmbedInput[], ctx: RequestContext, field: (i: number) => string): Promise<Float32Array[]> {
  checkPairs(registry, service, items, field);
  return service.embed(items, ctx);
}
