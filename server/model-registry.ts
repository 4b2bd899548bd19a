import { RETRIEVAL_TASKS, SERVED_TASKS, TASKS, type TaskName, type TaskRoute } from '../bundle/tasks.js';
import { BridgeTowerError, listSome } from '../common/errors.js';
import type { ModelService } from './model-service.js';
import { HttpError } from './schemas/errors.js';

export type RouteCapability = TaskRoute | 'retrieval';

/**
 * What each route needs of a bundle: the tasks (hence heads) it runs. A task route needs its own
 * task (bundle/tasks.ts names each task's route); the gallery stores ITC features for the
 * candidates and encodings for ITM re-ranking, so filling and searching it pick the same model.
 */
export const ROUTE_TASKS: Readonly<Record<RouteCapability, readonly TaskName[]>> = routeTasks();

function routeTasks(): Record<RouteCapability, readonly TaskName[]> {
  const routes: Partial<Record<RouteCapability, readonly TaskName[]>> = {};
  for (const task of SERVED_TASKS) routes[TASKS[task].route!] = [task];
  routes.retrieval = RETRIEVAL_TASKS;
  return routes as Record<RouteCapability, readonly TaskName[]>;
}

const DEMO_WARNING = 'random weights: answers are meaningless';

/**
 * The served models, and which one answers a request: the one the `model` field names, else the
 * only one with the route's heads.
 */
export class ModelRegistry {
  private readonly byName = new Map<string, ModelService>();

  constructor(readonly services: readonly ModelService[]) {
    if (services.length === 0) throw new BridgeTowerError('E_USAGE', 'no model to serve: give at least one bundle folder');
    for (const service of services) {
      if (this.byName.has(service.name)) {
        throw new BridgeTowerError('E_USAGE', `two bundles are both named '${service.name}': rename one in its config.json ("name") or serve it from a folder of another name`);
      }
      if (this.routesOf(service).length === 0) {
        // Served anyway, it would answer every request with 404: refuse it at start-up instead.
        throw new BridgeTowerError(
          'E_USAGE',
          `bundle '${service.name}' serves no route: it has ${service.tasks.length > 0 ? `only ${service.tasks.join(', ')}` : 'no task head'}; serve a bundle with a task head (${SERVED_TASKS.join(', ')}), or fine-tune this one first (bridgetower fine-tune)`,
          { bundle: service.name, tasks: [...service.tasks] },
        );
      }
      this.byName.set(service.name, service);
    }
  }

  /** The routes a service answers: those whose every task it has (the retrieval capability: the /gallery routes). */
  routesOf(service: ModelService): RouteCapability[] {
    return (Object.keys(ROUTE_TASKS) as RouteCapability[]).filter((route) => ROUTE_TASKS[route].every((task) => service.tasks.includes(task)));
  }

  /** The model that answers a request to a route with the `model` field `name` (undefined: not given). */
  select(capability: RouteCapability, name: string | undefined): ModelService {
    const tasks = ROUTE_TASKS[capability];
    if (name !== undefined) {
      const service = this.byName.get(name);
      if (!service) throw new HttpError('E_UNKNOWN_MODEL', `no model named '${name}' is served; served models: ${this.describeAll()}`);
      const missing = tasks.filter((task) => !service.tasks.includes(task));
      if (missing.length > 0) {
        throw new HttpError('E_UNKNOWN_MODEL', `model '${name}' has no ${missing.join(' or ')} head; served models: ${this.describeAll()}`);
      }
      return service;
    }
    const candidates = this.services.filter((service) => tasks.every((task) => service.tasks.includes(task)));
    const [only] = candidates;
    if (candidates.length === 1 && only) return only;
    if (candidates.length === 0) {
      throw new HttpError('E_UNKNOWN_MODEL', `no served model has the ${tasks.join(' and ')} head${tasks.length > 1 ? 's' : ''} this route needs; served models: ${this.describeAll()}`);
    }
    throw new HttpError('E_MODEL_REQUIRED', `several served models can answer this route: name one in the "model" field (${listSome(candidates.map((s) => JSON.stringify(s.name)))})`);
  }

  /** What every answer says of the model that produced it (schemas/fields.ts ANSWERED_BY): its label and precision variant. */
  answeredBy(service: ModelService): { model: string; precision: ModelService['precision'] } {
    return { model: this.label(service), precision: service.precision };
  }

  /** The name an answer's `model` field carries: a demo bundle's always says its answers are meaningless. */
  label(service: ModelService): string {
    return service.isDemo && !service.name.includes(DEMO_WARNING) ? `${service.name} (${DEMO_WARNING})` : service.name;
  }

  private describeAll(): string {
    return listSome(this.services.map((s) => `'${s.name}' (${s.tasks.join(', ') || 'no heads'})`));
  }
}
