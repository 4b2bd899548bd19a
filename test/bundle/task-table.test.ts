import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FIXED_LABELS_BY_HEAD } from '../../bundle/labels.js';
import { RETRIEVAL_TASKS, SERVED_TASKS, TASK_NAMES, TASKS, tasksOf } from '../../bundle/tasks.js';
import { GRAPHS } from '../../models/bridgetower/graphs.js';
import { SNLI_CLASSES } from '../../runtime/task-results.js';
import { buildServer } from '../../server/app.js';
import { ROUTE_TASKS } from '../../server/model-registry.js';
import { buildBundleGraph } from '../helpers/head-graphs.js';
import { tinyWeights } from '../helpers/tiny-checkpoints.js';
import { FakeModelService, memoryGallery, testOptions } from '../server/http-fakes.js';

/**
 * The served-task table (bundle/tasks.ts) against what it points at: the server's routes, the
 * graphs a bundle ships (models/bridgetower/graphs.ts), and the label tables. The demo
 * architecture has every head but MLM.
 */

const { arch, weights } = tinyWeights();

describe('served-task table', () => {
  it('each served task has a route of its own, and the server answers that route with that task', async () => {
    const app = await buildServer(testOptions(), { services: [new FakeModelService()], gallery: await memoryGallery() });
    after(() => app.close());
    const routes = SERVED_TASKS.map((task) => TASKS[task].route!);
    assert.equal(new Set(routes).size, routes.length, `two tasks share a route: ${routes.join(', ')}`);
    for (const task of SERVED_TASKS) {
      const route = TASKS[task].route!;
      assert.ok(app.hasRoute({ method: 'POST', url: `/${route}` }), `${task}'s route /${route} is not served`);
      assert.deepEqual(ROUTE_TASKS[route], [task], `/${route} should need exactly the ${task} head`);
    }
  });

  it("the gallery's retrieval needs served tasks with ITC features and an ITM head graph", () => {
    assert.deepEqual(ROUTE_TASKS.retrieval, RETRIEVAL_TASKS);
    for (const task of RETRIEVAL_TASKS) assert.ok(SERVED_TASKS.includes(task), `${task} is not served`);
    // ITC features find the candidates; a bundle that also has ITM re-ranks them with its head graph.
    assert.deepEqual(RETRIEVAL_TASKS, ['itc']);
    assert.ok(TASKS.itm.headGraph !== undefined, 'ITM re-ranks with a head graph');
  });

  it("every task's head is one the architecture declares, and tasksOf lists the tasks whose head it has", () => {
    for (const task of TASK_NAMES) assert.ok(TASKS[task].head in { ...arch.heads, mlm: true }, `${task}: unknown head ${TASKS[task].head}`);
    assert.deepEqual(tasksOf(arch), TASK_NAMES.filter((task) => task !== 'mlm'));
    const { itm: _itm, ...withoutItm } = arch.heads;
    assert.deepEqual(tasksOf({ ...arch, heads: withoutItm }), ['vqa', 'snli', 'nlvr2', 'itc']);
  });

  it('each head graph is a row of the graph table, available exactly when the bundle has the head', () => {
    for (const task of TASK_NAMES) {
      const headGraph = TASKS[task].headGraph;
      if (!headGraph) continue;
      const spec = GRAPHS.find((g) => g.file === `${headGraph.name}.onnx`);
      assert.ok(spec, `${task}: ${headGraph.name}.onnx is not in models/bridgetower/graphs.ts`);
      const { [TASKS[task].head]: _head, ...others } = arch.heads;
      assert.equal(spec.available(arch), true, `${headGraph.name} with the ${task} head`);
      assert.equal(spec.available({ ...arch, heads: others }), false, `${headGraph.name} without the ${task} head`);
    }
  });

  it("each head graph's inputs are its fusion passes' cls_feats, in order, with distinct image token types", () => {
    for (const task of TASK_NAMES) {
      const headGraph = TASKS[task].headGraph;
      if (!headGraph) continue;
      const graph = buildBundleGraph(headGraph.name, arch, weights)!;
      assert.deepEqual(
        graph.inputs.map((input) => input.name),
        headGraph.passes.map((pass) => pass.input),
        `${headGraph.name}'s inputs`,
      );
      const types = headGraph.passes.map((pass) => pass.tokenType);
      assert.equal(new Set(types).size, types.length, `${task}: two passes share an image token type`);
      // Token type 0 is the text's; the cross-modal embeddings hold token_types rows.
      for (const type of types) assert.ok(type >= 1 && type < arch.cross_modal.token_types, `${task}: image token type ${type}`);
    }
  });

  it('fixed label names are as many as the head has outputs, in the order the results read them', () => {
    for (const task of TASK_NAMES) {
      const labels = TASKS[task].labels;
      if (labels.from !== 'fixed') continue;
      const head = arch.heads[TASKS[task].head] as { num_labels?: number };
      assert.equal(labels.names.length, head.num_labels, `${task}: ${labels.names.length} names for ${head.num_labels} outputs`);
      assert.equal(FIXED_LABELS_BY_HEAD[`${task}_classifier`], labels.names, `${task}: the head's fixed labels`);
    }
    const snli = TASKS.snli.labels;
    assert.ok(snli.from === 'fixed');
    assert.deepEqual([...snli.names], [...SNLI_CLASSES]);
  });

  it("a task whose label names come from the user has a classifier head, whose output count the label file must match", () => {
    for (const task of TASK_NAMES) {
      if (TASKS[task].labels.from !== 'user') continue;
      const head = arch.heads[TASKS[task].head] as { num_labels?: number };
      assert.ok(Number.isInteger(head.num_labels) && head.num_labels! > 0, `${task}: the ${TASKS[task].head} head has no num_labels`);
    }
  });
});
