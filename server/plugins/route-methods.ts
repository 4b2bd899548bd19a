/**
 * Which methods each path answers, so that a known path asked with another method is a 405 with
 * `Allow` (RFC 9110 §15.5.6), not a 404 that suggests the path does not exist. The router itself
 * does not say; this records every route Fastify adds (`onRoute`) and matches a path against them.
 */
export class RouteMethods {
  private readonly routes: Array<{ pattern: RegExp; method: string }> = [];

  add(url: string, methods: string | readonly string[]): void {
    const pattern = patternOf(url);
    for (const method of typeof methods === 'string' ? [methods] : methods) this.routes.push({ pattern, method: method.toUpperCase() });
  }

  /** The methods some route answers at `path` (without the query), sorted; empty for a path no route has. */
  allowed(path: string): string[] {
    const methods = new Set(this.routes.filter((route) => route.pattern.test(path)).map((route) => route.method));
    // Fastify answers HEAD for every GET route (exposeHeadRoutes).
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  }
}

/** A route URL as Fastify writes it (`/gallery/:id`, `/docs/*`) as a regular expression over paths. */
function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => (segment === '*' ? '.*' : segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}
