import type { FastifyPluginAsync, FastifyPluginOptions } from 'fastify';

/**
 * Marks a plugin as one that configures the instance registering it (hooks, error handlers,
 * decorators), instead of opening an encapsulated context: what `fastify-plugin` does, through
 * the `skip-override` symbol Fastify reads. Routes stay in encapsulated plugins.
 */
export function sharedPlugin<Options extends FastifyPluginOptions>(name: string, plugin: FastifyPluginAsync<Options>): FastifyPluginAsync<Options> {
  Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: name });
  return plugin;
}
