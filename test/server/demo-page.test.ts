import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { buildDemoBundle } from '../../convert/demo/demo-bundle.js';
import { itUnless } from '../helpers/skipped-suite.js';
import { BridgeTowerError } from '../../common/errors.js';
import { buildServer } from '../../server/app.js';
import { readDemoPage } from '../../server/demo/demo-page.js';
import type { ModelService } from '../../server/model-service.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/options.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const DEMO_MODEL = 'bridgetower-demo (random weights: answers are meaningless)';

/** Outside CI a machine without Chromium skips the browser tests; in CI that is a failure. */
const skipBrowser = existsSync(CHROMIUM) || process.env.CI ? false : `needs ${CHROMIUM} (apt-get install chromium), which is absent — skipped outside CI`;

interface RunningServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Whether `error` says a module of the server does not exist yet: the runtime that buildServer
 * loads (server/scheduling/bundle-service.ts) lands separately from the HTTP layer. A missing module
 * is also a type error, so `npm test` cannot pass with one.
 */
function isMissingServerModule(error: unknown): boolean {
  return /Cannot find module '[^']*\/server\/[^']+\.(js|ts)'/.test(String((error as Error | undefined)?.message));
}

/** The real server on the demo bundle; a stand-in model behind it while the runtime has not landed. */
async function startServer(work: string): Promise<RunningServer> {
  const bundle = join(work, 'demo');
  await buildDemoBundle(bundle);
  const options = { ...DEFAULT_SERVER_OPTIONS, bundles: [bundle], host: '127.0.0.1', port: 0, dataDir: join(work, 'data'), logger: false };
  let app: Awaited<ReturnType<typeof buildServer>>;
  try {
    app = await buildServer(options);
  } catch (error) {
    if (!isMissingServerModule(error)) throw error;
    process.stderr.write(`demo-page test: ${(error as Error).message.split('\n')[0]}: testing the page against a stand-in model\n`);
    // Injected services get a gallery in memory.
    app = await buildServer(options, { services: [standInDemoModel()] });
  }
  const url = (await app.listen({ host: '127.0.0.1', port: 0 })).replace(/\/$/, '');
  await waitUntilReady(url);
  return {
    url,
    close: async () => {
      await app.close();
    },
  };
}

/** Polls /readyz (sessions loaded and warmed up) for up to a minute. */
async function waitUntilReady(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await fetch(`${url}/readyz`);
    if (response.ok) return;
    if (Date.now() > deadline) throw new Error(`${url}/readyz still answers ${response.status} after 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * A model with fixed answers of the documented shapes, for the real HTTP layer until the runtime
 * lands: the page's requests still go through the real routes, multipart parsing, error answers
 * and gallery. Like the runtime, it refuses bytes that are not an image.
 */
function standInDemoModel(): ModelService {
  const image = (bytes: Uint8Array): void => {
    if (!Buffer.from(bytes.subarray(0, 8)).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
      throw new BridgeTowerError('E_IMAGE_UNSUPPORTED', 'the image is not in an accepted format (JPEG, PNG, WebP, GIF, TIFF, AVIF)');
    }
  };
  const unused = async (): Promise<never> => {
    throw new Error('the demo page does not call this');
  };
  return {
    name: DEMO_MODEL,
    isDemo: true,
    tasks: ['vqa', 'snli', 'itm', 'itc'],
    info: { hiddenSize: 32, embeddingDim: 8, maxTextTokens: { vqa: 40, snli: 40, itm: 40, itc: 40 }, imageSize: 64, weightsDtype: 'float32' },
    precision: 'fp32',
    ready: async () => {},
    vqa: async (input) => {
      image(input.image);
      return ['cat', 'red', 'two', 'yes', 'table'].slice(0, input.topK).map((answer, i) => ({ answer, score: 0.9 / (i + 1) }));
    },
    fillMask: unused,
    entailment: async (input) => {
      image(input.image);
      return { label: 'neutral', scores: { entailment: 0.2, neutral: 0.5, contradiction: 0.3 } };
    },
    encodeImage: async (bytes) => {
      image(bytes);
      return { hash: createHash('sha256').update(bytes).digest('hex'), itc: Float32Array.from([0.6, 0.8]), embeds: new Float32Array(12).fill(0.5) };
    },
    search: async ({ k, gallery }) => (await gallery.nearest(Float32Array.from([0.6, 0.8]), k)).map(({ id }, i) => ({ id, score: 2.5 - i, itc: 0.3 })),
    nlvr2: unused,
    itm: unused,
    embedText: unused,
    embedImage: unused,
    embedsPairs: false,
    embed: async (items) =>
      items.map((item) => {
        if (item.image) image(item.image);
        return item.image ? Float32Array.from([0.6, 0.8]) : Float32Array.from([1, 0]);
      }),
    countTokens: () => 0,
    close: async () => {},
  };
}

/** A 64×48 PNG with a colour gradient, so the image is real but generated, never a committed blob. */
async function gradientPng(): Promise<Buffer> {
  const width = 64;
  const height = 48;
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) pixels.set([x * 4, y * 5, 128], (y * width + x) * 3);
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

describe('the demo page file', () => {
  it('is one self-contained HTML file: inline CSS and script, no external URL', () => {
    const html = readDemoPage();
    assert.match(html, /^<!doctype html>/i);
    assert.doesNotMatch(html, /\b(src|href)\s*=\s*["']?(https?:)?\/\//i);
    assert.doesNotMatch(html, /<link\b|<script\b[^>]*\bsrc=|@import|\burl\(/);
  });

  it('has the stable element ids the tests and users rely on', () => {
    const html = readDemoPage();
    for (const id of ['image-input', 'preview', 'question', 'top-k', 'ask', 'answers', 'model', 'meaningless-banner', 'error', 'hypothesis', 'check-entailment', 'entailment', 'gallery-id', 'add-to-gallery', 'search-text', 'search', 'search-results', 'masked-text', 'fill-mask', 'fill-mask-results', 'itm-texts', 'match', 'itm-results', 'nlvr2-left', 'nlvr2-right', 'statement', 'check-nlvr2', 'nlvr2-result', 'image-status', 'unavailable']) {
      assert.match(html, new RegExp(`id="${id}"`), `#${id}`);
    }
  });
});

describe('the demo page in headless Chromium', () => {
  const it = itUnless(skipBrowser);
  let work = '';
  let server: RunningServer;
  let browser: Browser;
  let png: Buffer;
  /** Every URL the pages asked for: the page must not reach outside its own server. */
  const requested: string[] = [];

  before(async () => {
    if (skipBrowser) return;
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: CI must install chromium (see .ci/run)`);
    work = mkdtempSync(join(tmpdir(), 'bridgetower-demo-page-'));
    server = await startServer(work);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    png = await gradientPng();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function openPage(t: { after(fn: () => Promise<void>): void }): Promise<Page> {
    const page = await browser.newPage();
    t.after(() => page.close());
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(`${server.url}/`);
    return page;
  }

  async function chooseImage(page: Page, name = 'gradient.png', buffer = png): Promise<void> {
    await page.setInputFiles('#image-input', { name, mimeType: 'image/png', buffer });
  }

  it('names the served model as soon as it loads, with the meaningless-weights banner for the demo bundle', async (t) => {
    const page = await openPage(t);
    await page.waitForSelector('#meaningless-banner:visible');
    assert.match(await page.textContent('#model') ?? '', /^bridgetower-demo/);
    assert.equal(await page.isVisible('.model-select'), false, 'no model choice with one model served');
  });

  it('shows a preview of the chosen image', async (t) => {
    const page = await openPage(t);
    await chooseImage(page);
    // Page-side expressions are strings: the tests type-check without the DOM library.
    await page.waitForFunction("(() => { const img = document.querySelector('#preview'); return !img.hidden && img.complete && img.naturalWidth === 64; })()");
    assert.equal(await page.inputValue('#gallery-id'), 'gradient.png');
  });

  it('asking a question renders the answers with score bars, the model name and the meaningless-weights banner', async (t) => {
    const page = await openPage(t);
    await chooseImage(page);
    await page.fill('#question', 'What color is it?');
    await page.fill('#top-k', '3');
    await page.click('#ask');
    await page.waitForSelector('#answers li');

    const answers = await page.$$eval('#answers li', (items) =>
      items.map((li) => ({
        label: li.querySelector('.label')?.textContent ?? '',
        width: (li.querySelector('.bar > span') as { style: { width: string } } | null)?.style.width ?? '',
        value: Number(li.querySelector('.value')?.textContent),
      })),
    );
    assert.equal(answers.length, 3);
    for (const answer of answers) {
      assert.ok(answer.label.length > 0);
      assert.ok(answer.value >= 0 && answer.value <= 1, `score ${answer.value} is a probability`);
      assert.ok(Math.abs(Number.parseFloat(answer.width) - answer.value * 100) <= 0.1, `bar ${answer.width} shows score ${answer.value}`);
    }
    assert.match(await page.textContent('#model') ?? '', /meaningless/);
    assert.equal(await page.isVisible('#meaningless-banner'), true);
    assert.equal(await page.isVisible('#error'), false);
  });

  it('an error body from the server is shown with its code and message', async (t) => {
    const page = await openPage(t);
    await chooseImage(page, 'not-really.png', Buffer.from('these bytes are text, not an image'));
    await page.fill('#question', 'What is this?');
    await page.click('#ask');
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error') ?? '', /^E_IMAGE_\w+: \S/);
    assert.equal(await page.$$eval('#answers li', (items) => items.length), 0);
  });

  it('asking without an image says to choose one, without calling the server', async (t) => {
    const page = await openPage(t);
    const before = requested.length;
    await page.fill('#question', 'Anything?');
    await page.click('#ask');
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error') ?? '', /choose an image first/);
    assert.equal(requested.length, before);
  });

  it('the fill-mask section is hidden (the demo bundle has no MLM head) and the note says so', async (t) => {
    const page = await openPage(t);
    await page.waitForSelector('#unavailable:not([hidden])');
    assert.equal(await page.isVisible('#fill-mask-section'), false);
    assert.match(await page.textContent('#unavailable') ?? '', /fill-mask \(MLM\)/);
    for (const section of ['#vqa-section', '#entailment-section', '#itm-section', '#nlvr2-section', '#gallery-section', '#embed-section']) {
      assert.equal(await page.isVisible(section), true, section);
    }
  });

  it('checking a hypothesis shows the verdict and the three class probabilities', async (t) => {
    const page = await openPage(t);
    await chooseImage(page);
    await page.fill('#hypothesis', 'The picture is a gradient.');
    await page.click('#check-entailment');
    await page.waitForSelector('#entailment-scores li');
    assert.match(await page.textContent('#entailment-label') ?? '', /^Verdict: (entailment|neutral|contradiction)$/);
    const labels = await page.$$eval('#entailment-scores .label', (items) => items.map((item) => item.textContent));
    assert.deepEqual(labels, ['entailment', 'neutral', 'contradiction']);
  });

  it('an image added to the gallery is found by a text search', async (t) => {
    const page = await openPage(t);
    await chooseImage(page);
    await page.fill('#gallery-id', 'demo-gradient');
    await page.click('#add-to-gallery');
    await page.waitForSelector('#gallery-status:has-text("Added")');
    await page.fill('#search-text', 'a colourful gradient');
    await page.click('#search');
    await page.waitForSelector('#search-results li .label');
    const ids = await page.$$eval('#search-results .label', (items) => items.map((item) => item.textContent));
    assert.ok(ids.includes('demo-gradient'), `search results ${JSON.stringify(ids)} include the added image`);
    assert.equal(await page.isVisible('#error'), false);
  });

  it('the embeddings section embeds a text and the chosen image and shows their cosine similarities', async (t) => {
    const page = await openPage(t);
    await chooseImage(page);
    await page.fill('#embed-text', 'a colourful gradient');
    await page.click('#embed');
    await page.waitForSelector('#embed-status:has-text("Embedded the text")');
    await page.fill('#embed-text', '');
    await page.click('#embed');
    await page.waitForSelector('#embed-status:has-text("Embedded the image")');
    const cells = await page.$$eval('#embed-similarities tr', (rows) => rows.map((row) => Array.from((row as unknown as { children: ArrayLike<{ textContent: string | null }> }).children, (cell) => cell.textContent)));
    assert.equal(cells.length, 3, `a header and one row per embedding: ${JSON.stringify(cells)}`);
    assert.match(cells[1]![0]!, /^text 1/);
    assert.match(cells[2]![0]!, /^image 2/);
    assert.deepEqual([cells[1]![1], cells[2]![2]], ['1.000', '1.000'], 'each embedding has cosine 1 with itself');
    assert.equal(cells[1]![2], cells[2]![1], 'the similarity is symmetric');
  });

  it('the page loads nothing from outside its own server', () => {
    assert.ok(requested.length > 0);
    const outside = requested.filter((url) => !url.startsWith(`${server.url}/`) && !url.startsWith('blob:') && !url.startsWith('data:'));
    assert.deepEqual(outside, []);
  });
});
