import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildServer } from '../../server/app.js';
import { METRIC_NAMES, ServerMetrics } from '../../server/metrics.js';
import { FakeModelService, fakeImage, fakeServer, multipart, testOptions } from './http-fakes.js';

const B64 = fakeImage(12).toString('base64');

describe('choosing the model', () => {
  const twoModels = () => [new FakeModelService('alpha', ['vqa', 'itm']), new FakeModelService('beta', ['vqa', 'snli'])];

  it('a route only one model can answer uses it without a model field', async (t) => {
    const { app } = await fakeServer(t, { services: twoModels() });
    assert.equal((await app.inject({ method: 'POST', url: '/entailment', payload: { image: B64, hypothesis: 'h' } })).json().model, 'beta');
    assert.equal((await app.inject({ method: 'POST', url: '/itm', payload: { image: B64, texts: ['t'] } })).json().model, 'alpha');
  });

  it('a route several models can answer needs the model field: 400 listing the candidates', async (t) => {
    const { app } = await fakeServer(t, { services: twoModels() });
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } });
    assert.equal(response.statusCode, 400);
    assert.equal(response.json().error.code, 'E_MODEL_REQUIRED');
    assert.match(response.json().error.message, /"alpha", "beta"/);
  });

  it('the model field selects a model by name, in JSON and in multipart', async (t) => {
    const services = twoModels();
    const { app } = await fakeServer(t, { services });
    const json = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q', model: 'beta' } });
    assert.equal(json.json().model, 'beta');
    const form = await multipart([['image', { bytes: fakeImage() }], ['question', 'q'], ['model', 'alpha']]);
    assert.equal((await app.inject({ method: 'POST', url: '/vqa', ...form })).json().model, 'alpha');
    assert.deepEqual(services.map((s) => s.calls.length), [1, 1]);
  });

  it('a named model without the head the route needs is a 404 listing the served models', async (t) => {
    const { app } = await fakeServer(t, { services: twoModels() });
    const response = await app.inject({ method: 'POST', url: '/entailment', payload: { image: B64, hypothesis: 'h', model: 'alpha' } });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().error.code, 'E_UNKNOWN_MODEL');
    assert.match(response.json().error.message, /'alpha' has no snli head.*'alpha' \(vqa, itm\), 'beta' \(vqa, snli\)/);
  });

  it('an unknown model name is a 404 listing the served models', async (t) => {
    const { app } = await fakeServer(t, { services: twoModels() });
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q', model: 'gamma' } });
    assert.equal(response.statusCode, 404);
    assert.match(response.json().error.message, /no model named 'gamma'.*'alpha'.*'beta'/);
  });

  it('a route no served model can answer is a 404', async (t) => {
    const { app } = await fakeServer(t, { services: twoModels() });
    const response = await app.inject({ method: 'POST', url: '/search', payload: { text: 'q' } });
    assert.equal(response.statusCode, 404);
    assert.match(response.json().error.message, /no served model has the itc head this route needs/);
  });

  it("a demo model's answers always say they are meaningless", async (t) => {
    const { app } = await fakeServer(t, { services: [new FakeModelService('tiny', ['vqa'], true)] });
    const response = await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } });
    assert.equal(response.json().model, 'tiny (random weights: answers are meaningless)');
  });

  it('two models of the same name are refused at startup', async () => {
    await assert.rejects(buildServer(testOptions(), { services: [new FakeModelService('x'), new FakeModelService('x')] }), /both named 'x'/);
  });
});

describe('probes', () => {
  it('/healthz answers while a model call is still running', async (t) => {
    const service = new FakeModelService();
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    service.vqa = async () => {
      await blocked;
      return [];
    };
    const { app } = await fakeServer(t, { services: [service] });
    const pending = app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } });
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    assert.deepEqual(health.json(), { status: 'ok' });
    release();
    assert.equal((await pending).statusCode, 200);
  });

  it('/readyz answers 503 until every model is ready, then 200 with the models', async (t) => {
    let ready!: () => void;
    const slow = new FakeModelService('slow', ['vqa'], false, new Promise<void>((resolve) => (ready = resolve)));
    slow.precision = 'int8';
    slow.int8Weights = 's8';
    const { app } = await fakeServer(t, { services: [new FakeModelService('quick', ['itm']), slow] });
    const before = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(before.statusCode, 503);
    assert.equal(before.json().error.code, 'E_NOT_READY');
    assert.match(before.json().error.message, /still loading: 'slow'/);
    ready();
    await new Promise((resolve) => setImmediate(resolve));
    const after = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(after.statusCode, 200);
    assert.deepEqual(after.json(), {
      status: 'ready',
      models: [
        { name: 'quick', tasks: ['itm'], demo: false, precision: 'fp32' },
        { name: 'slow', tasks: ['vqa'], demo: false, precision: 'int8', int8_weights: 's8' },
      ],
    });
  });

  it('/readyz answers 503 with the reason when a model failed to load', async (t) => {
    const failed = Promise.reject(new Error('onnx/fusion.onnx is missing'));
    failed.catch(() => {}); // the server's own handler is attached when it is built
    const { app } = await fakeServer(t, { services: [new FakeModelService('broken', ['vqa'], false, failed)] });
    await new Promise((resolve) => setImmediate(resolve));
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(response.statusCode, 503);
    assert.match(response.json().error.message, /'broken': onnx\/fusion.onnx is missing/);
  });
});

describe('/metrics', () => {
  it('exposes every metric in the Prometheus text format', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/plain/);
    for (const name of Object.values(METRIC_NAMES)) assert.match(response.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
  });

  it('counts requests by route pattern and status', async (t) => {
    const { app } = await fakeServer(t);
    await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: 'q' } });
    await app.inject({ method: 'POST', url: '/vqa', payload: { image: B64, question: '' } });
    await app.inject({ method: 'PUT', url: '/gallery/some-id', payload: { image: B64 } });
    await app.inject({ method: 'GET', url: '/no/such/route' });
    const body = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(body, /bridgetower_http_requests_total\{route="\/vqa",method="POST",status="200"\} 1/);
    assert.match(body, /bridgetower_http_requests_total\{route="\/vqa",method="POST",status="422"\} 1/);
    assert.match(body, /bridgetower_http_requests_total\{route="\/gallery\/:id",method="PUT",status="200"\} 1/);
    assert.match(body, /bridgetower_http_requests_total\{route="unmatched",method="GET",status="404"\} 1/);
    assert.match(body, /bridgetower_http_request_duration_seconds_count\{route="\/vqa",method="POST"\} 2/);
  });

  it("shows what the runtime reports: batches, queue times and depth, cache, execution provider, graph precision", async (t) => {
    const metrics = new ServerMetrics({ processMetrics: false });
    const { app } = await fakeServer(t, { metrics });
    metrics.batch('vqa', 'fusion_vqa', 4);
    metrics.queueTime('vqa', 'fusion_vqa', 12);
    metrics.inferenceTime('vqa', 'fusion_vqa', 250);
    metrics.queueDepth(3);
    metrics.cache(true);
    metrics.cache(false);
    metrics.cache(false);
    metrics.executionProvider('fake', 'cpu', true);
    metrics.graphPrecision('fake', 'int8', 'u8');
    metrics.graphPrecision('other', 'fp16', undefined);
    const body = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(body, /bridgetower_batch_size_bucket\{le="4",model="vqa",stage="fusion_vqa"\} 1/);
    assert.match(body, /bridgetower_batch_size_bucket\{le="2",model="vqa",stage="fusion_vqa"\} 0/);
    assert.match(body, /bridgetower_queue_time_seconds_sum\{model="vqa",stage="fusion_vqa"\} 0.012/);
    assert.match(body, /bridgetower_inference_time_seconds_sum\{model="vqa",stage="fusion_vqa"\} 0.25/);
    assert.match(body, /bridgetower_inference_time_seconds_bucket\{le="0.1",model="vqa",stage="fusion_vqa"\} 0/);
    assert.match(body, /bridgetower_queue_depth 3/);
    assert.match(body, /bridgetower_image_cache_hits_total 1/);
    assert.match(body, /bridgetower_image_cache_misses_total 2/);
    assert.match(body, /bridgetower_execution_provider\{model="fake",provider="cpu",fell_back="true"\} 1/);
    assert.match(body, /bridgetower_graph_precision\{model="fake",precision="int8",int8_weights="u8"\} 1/);
    assert.match(body, /bridgetower_graph_precision\{model="other",precision="fp16",int8_weights=""\} 1/);
  });

  it("shows each retrieval model's gallery size as PUT and DELETE change it", async (t) => {
    const metrics = new ServerMetrics({ processMetrics: false });
    const services = [new FakeModelService('alpha', ['itm', 'itc']), new FakeModelService('beta', ['itm', 'itc']), new FakeModelService('vqa-only', ['vqa'])];
    const app = await buildServer(testOptions(), { services, metrics });
    t.after(() => app.close());
    const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(await scrape(), /bridgetower_gallery_size\{model="alpha"\} 0/);
    for (const id of ['a', 'b']) await app.inject({ method: 'PUT', url: `/gallery/${id}?model=alpha`, payload: { image: B64 } });
    await app.inject({ method: 'PUT', url: '/gallery/c?model=beta', payload: { image: B64 } });
    let body = await scrape();
    assert.match(body, /bridgetower_gallery_size\{model="alpha"\} 2/);
    assert.match(body, /bridgetower_gallery_size\{model="beta"\} 1/);
    assert.doesNotMatch(body, /gallery_size\{model="vqa-only"\}/);
    await app.inject({ method: 'DELETE', url: '/gallery/a?model=alpha' });
    body = await scrape();
    assert.match(body, /bridgetower_gallery_size\{model="alpha"\} 1/);
  });

  it('keeps a registry per server', async (t) => {
    const { app: one } = await fakeServer(t);
    const { app: two } = await fakeServer(t);
    await one.inject({ method: 'POST', url: '/embed', payload: { text: 't' } });
    assert.doesNotMatch((await two.inject({ method: 'GET', url: '/metrics' })).body, /route="\/embed"/);
  });
});

describe('documentation and the demo page', () => {
  it('/openapi.json lists every route with its methods', async (t) => {
    const { app } = await fakeServer(t);
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const routes = Object.entries(document.paths as Record<string, object>).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    assert.deepEqual(routes.sort(), [
      'DELETE /gallery/{id}',
      'GET /gallery',
      'GET /gallery/{id}',
      'GET /health',
      'GET /healthz',
      'GET /info',
      'GET /metrics',
      'GET /readyz',
      'GET /v1/models',
      'POST /embed',
      'POST /entailment',
      'POST /fill-mask',
      'POST /gallery:batch',
      'POST /itm',
      'POST /nlvr2',
      'POST /search',
      'POST /v1/embeddings',
      'POST /vqa',
      'PUT /gallery/{id}',
    ]);
  });

  it('documents the JSON and multipart bodies from the same schema', async (t) => {
    const { app } = await fakeServer(t);
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const content = document.paths['/vqa'].post.requestBody.content;
    assert.deepEqual(Object.keys(content).sort(), ['application/json', 'multipart/form-data']);
    const ref: string = content['application/json'].schema.$ref;
    const request = document.components.schemas[ref.replace('#/components/schemas/', '')];
    // The multipart side is the same schema inlined, its image a file part (format: binary).
    const { image: jsonImage, ...jsonRest } = request.properties;
    const { image: fileImage, ...multipartRest } = content['multipart/form-data'].schema.properties;
    assert.deepEqual(multipartRest, jsonRest);
    assert.equal(fileImage.format, 'binary');
    assert.ok(jsonImage.anyOf);
    assert.deepEqual(content['multipart/form-data'].schema.required, request.required);
    assert.deepEqual(request.required.sort(), ['image', 'question']);
    assert.equal(request.properties.top_k.default, 5);
    assert.ok(document.paths['/vqa'].post.responses['200'], 'the 200 answer is documented');
    assert.ok(document.paths['/vqa'].post.responses['4XX'] ?? document.paths['/vqa'].post.responses['4xx'], 'the error answers are documented');
  });

  it('/docs serves the OpenAPI UI', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'GET', url: '/docs' });
    assert.equal(response.statusCode, 200);
    assert.match(response.body, /swagger/i);
  });

  it('/ serves the demo page', async (t) => {
    const { app } = await fakeServer(t);
    const response = await app.inject({ method: 'GET', url: '/' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/html/);
    assert.match(response.body, /<html/);
  });
});

describe('closing', () => {
  it('injected services are the caller’s to close', async () => {
    const service = new FakeModelService();
    const app = await buildServer(testOptions(), { services: [service] });
    await app.close();
    assert.equal(service.closed, false);
  });
});
