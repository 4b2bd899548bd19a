import type { ImageEncoding, SearchableGallery } from '../../server/model-service.js';

/** A gallery over encodings in hand: exact cosine candidates (ITC dot products), embeds as given. */
export function exactGallery(items: ReadonlyArray<{ id: string; encoding: ImageEncoding }>): SearchableGallery {
  return {
    nearest: async (query, n) =>
      items
        .map(({ id, encoding }) => ({ id, similarity: encoding.itc!.reduce((sum, v, j) => sum + v * query[j]!, 0) }))
        .sort((a, b) => b.similarity - a.similarity)
        .slice(0, n),
    embeds: async (id) => items.find((item) => item.id === id)?.encoding.embeds,
  };
}
