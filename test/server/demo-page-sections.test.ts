import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import type { BridgeTowerArchitecture } from '../../bundle/architecture.js';
import { writeSafetensors } from '../../bundle/safetensors/write-safetensors.js';
import { buildByteLevelDemoTokenizer } from '../../bundle/tokenizer-json.js';
import { convertCheckpoint } from '../../convert/convert-checkpoint.js';
import { demoArchitecture } from '../../convert/demo/demo-architecture.js';
import { randomStateDict } from '../../convert/demo/random-weights.js';
import { buildServer } from '../../server/app.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/options.js';
import { itUnless } from '../helpers/skipped-suite.js';

/**
 * The demo page with one bundle per task, as the released checkpoints come (plus a second VQA
 * bundle): each section is answered by the model that has its head, offers a selector only where
 * several have it, and is hidden where none has; answers about a previous image are cleared; a
 * file that is not an image gets a message; and at a phone's 390 px no word breaks across lines.
 */

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const skipBrowser = existsSync(CHROMIUM) || process.env.CI ? false : `needs ${CHROMIUM} (apt-get install chromium), which is absent — skipped outside CI`;

type Head = keyof BridgeTowerArchitecture['heads'];
/** Bundle name → the one head it keeps. */
const BUNDLES: Record<string, Head> = { 'vqa-only': 'vqa', 'vqa-second': 'vqa', 'snli-only': 'snli', 'nlvr2-only': 'nlvr2', 'itm-only': 'itm', 'itc-only': 'itc' };
/** Long real words, so that the 390 px check has labels to break if the layout let it. */
const VQA_LABELS = ['refrigerator', 'motorcycle', 'skateboarding', 'unbelievable', 'yes', 'no', 'two', 'three', 'photographer', 'contradiction', 'blue', 'red', 'green', 'frisbee', 'giraffe', 'umbrella'];

async function singleHeadBundle(work: string, name: string, head: Head): Promise<string> {
  const arch = demoArchitecture();
  for (const other of Object.keys(arch.heads) as Head[]) if (other !== head) delete arch.heads[other];
  const weights = randomStateDict(arch, name.length);
  const checkpoint = join(work, `${name}.safetensors`);
  writeSafetensors(checkpoint, [...weights].map(([tensor, { shape, values }]) => ({ name: tensor, dtype: 'float32' as const, shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) })));
  const tokenizer = join(work, 'tokenizer.json');
  writeFileSync(tokenizer, JSON.stringify(buildByteLevelDemoTokenizer()));
  const labels = join(work, 'labels.json');
  writeFileSync(labels, JSON.stringify(VQA_LABELS.slice(0, arch.heads.vqa?.num_labels ?? 0)));
  const out = join(work, 'bundles', name);
  const textConfig = { num_attention_heads: arch.text.num_heads, layer_norm_eps: arch.text.layer_norm_eps, source: 'the demo architecture' };
  await convertCheckpoint({ checkpoint, out, tokenizer, ...(head === 'vqa' ? { labels } : {}), textConfig, name });
  return out;
}

async function png(width: number, height: number, blue: number): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) pixels.set([(i * 7) % 256, (i * 3) % 256, blue], i * 3);
  return sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

describe('the demo page with one bundle per task, in headless Chromium', () => {
  const it = itUnless(skipBrowser);
  let work = '';
  let url = '';
  let app: Awaited<ReturnType<typeof buildServer>> | undefined;
  let browser: Browser;
  let first: Buffer;
  let second: Buffer;

  before(async () => {
    if (skipBrowser) return;
    work = mkdtempSync(join(tmpdir(), 'bridgetower-demo-sections-'));
    const bundles = [];
    for (const [name, head] of Object.entries(BUNDLES)) bundles.push(await singleHeadBundle(work, name, head));
    app = await buildServer({ ...DEFAULT_SERVER_OPTIONS, bundles, host: '127.0.0.1', port: 0, dataDir: join(work, 'data'), logger: false });
    url = (await app.listen({ host: '127.0.0.1', port: 0 })).replace(/\/$/, '');
    const deadline = Date.now() + 120_000;
    while (!(await fetch(`${url}/readyz`)).ok) {
      if (Date.now() > deadline) throw new Error('timed out after 120 s waiting for /readyz');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    [first, second] = await Promise.all([png(64, 48, 200), png(40, 40, 20)]);
  });

  after(async () => {
    await browser?.close();
    await app?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function openPage(t: { after(fn: () => Promise<void>): void }, viewport = { width: 1200, height: 900 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    t.after(() => page.close());
    await page.goto(`${url}/`);
    await page.waitForSelector('#vqa-section .section-model:not([hidden])');
    return page;
  }

  /** Runs `action` and returns the `model` of the answer to `path` that it caused. */
  async function answeringModel(page: Page, path: string, action: () => Promise<void>): Promise<string> {
    const [response] = await Promise.all([page.waitForResponse((r) => new URL(r.url()).pathname.startsWith(path) && r.request().method() !== 'GET'), action()]);
    const body = (await response.json()) as { model?: string; error?: { message: string } };
    assert.equal(response.status(), 200, `${path}: ${JSON.stringify(body)}`);
    return body.model!;
  }

  const choose = (page: Page, selector: string, name: string, buffer: Buffer, mimeType = 'image/png') => page.setInputFiles(selector, { name, mimeType, buffer });

  it('each section is answered by the bundle with its head, and a selector appears only where two have it', async (t) => {
    const page = await openPage(t);
    const shown = await page.$$eval('section[data-task]', (sections) =>
      sections.map((s) => {
        const line = s.querySelector('.section-model') as unknown as { hidden: boolean };
        const name = s.querySelector('.model-name')?.textContent ?? '';
        const options = Array.from(s.querySelectorAll('.model-select option') as unknown as ArrayLike<{ textContent: string }>, (o) => o.textContent);
        const label = s.querySelector('.section-model label') as unknown as { hidden: boolean };
        return { id: s.id, hidden: (s as unknown as { hidden: boolean }).hidden, line: line.hidden ? '' : name, selector: label.hidden ? [] : options };
      }),
    );
    assert.deepEqual(shown, [
      { id: 'vqa-section', hidden: false, line: '2 models', selector: ['vqa-only', 'vqa-second'] },
      { id: 'entailment-section', hidden: false, line: 'snli-only', selector: [] },
      { id: 'itm-section', hidden: false, line: 'itm-only', selector: [] },
      { id: 'nlvr2-section', hidden: false, line: 'nlvr2-only', selector: [] },
      { id: 'gallery-section', hidden: false, line: 'itc-only', selector: [] },
      { id: 'embed-section', hidden: false, line: 'itc-only', selector: [] },
      { id: 'fill-mask-section', hidden: true, line: '', selector: [] },
    ]);
    assert.match(await page.textContent('#unavailable') ?? '', /Not offered \(no served model has the head\): fill-mask \(MLM\)\./);

    await choose(page, '#image-input', 'first.png', first);
    await page.fill('#question', 'What is it?');
    await page.selectOption('#vqa-section .model-select', 'vqa-second');
    assert.equal(await answeringModel(page, '/vqa', () => page.click('#ask')), 'vqa-second');
    await page.selectOption('#vqa-section .model-select', 'vqa-only');
    assert.equal(await answeringModel(page, '/vqa', () => page.click('#ask')), 'vqa-only');
    await page.fill('#hypothesis', 'There is a gradient.');
    assert.equal(await answeringModel(page, '/entailment', () => page.click('#check-entailment')), 'snli-only');
    await page.fill('#itm-texts', 'a gradient\na dog');
    assert.equal(await answeringModel(page, '/itm', () => page.click('#match')), 'itm-only');
    await page.waitForSelector('#itm-results li:nth-child(2)');
    await choose(page, '#nlvr2-left', 'left.png', first);
    await choose(page, '#nlvr2-right', 'right.png', second);
    await page.fill('#statement', 'Both images are colourful.');
    assert.equal(await answeringModel(page, '/nlvr2', () => page.click('#check-nlvr2')), 'nlvr2-only');
    assert.match(await page.textContent('#nlvr2-result') ?? '', /^(True|False) \(probability [01]\.\d{3}\)$/);
    await page.fill('#gallery-id', 'first');
    await page.click('#add-to-gallery');
    await page.waitForSelector('#gallery-status:has-text("Added")');
    await page.fill('#search-text', 'a gradient');
    assert.equal(await answeringModel(page, '/search', () => page.click('#search')), 'itc-only');
    await page.fill('#embed-text', 'a gradient');
    assert.equal(await answeringModel(page, '/embed', () => page.click('#embed')), 'itc-only');
    assert.equal(await page.isVisible('#error'), false);
  });

  it("choosing another image clears the previous image's answers", async (t) => {
    const page = await openPage(t);
    await choose(page, '#image-input', 'first.png', first);
    await page.fill('#question', 'What is it?');
    await page.click('#ask');
    await page.waitForSelector('#answers li');
    await page.fill('#hypothesis', 'There is a gradient.');
    await page.click('#check-entailment');
    await page.waitForSelector('#entailment-scores li');
    await page.fill('#itm-texts', 'a gradient');
    await page.click('#match');
    await page.waitForSelector('#itm-results li');

    await choose(page, '#image-input', 'second.png', second);
    assert.equal(await page.$$eval('#answers li, #entailment-scores li, #itm-results li', (items) => items.length), 0);
    assert.equal(await page.isVisible('#entailment-label'), false);
    // The new image gets its own answers.
    await page.click('#ask');
    await page.waitForSelector('#answers li');
  });

  it('a file that is not an image gets a clear message and no preview, and is not sent', async (t) => {
    const page = await openPage(t);
    await choose(page, '#image-input', 'notes.txt', Buffer.from('shopping list: milk, bread'), 'text/plain');
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error') ?? '', /^NOT_AN_IMAGE: “notes\.txt” is a text\/plain file, not an image: choose a JPEG, PNG/);
    assert.equal(await page.isVisible('#preview'), false);
    await page.fill('#question', 'What is it?');
    await page.click('#ask');
    assert.match(await page.textContent('#error') ?? '', /choose an image first/);
  });

  it('bytes typed as an image that the browser cannot decode get a message instead of a broken preview', async (t) => {
    const page = await openPage(t);
    await choose(page, '#image-input', 'broken.png', Buffer.from('not really a PNG'));
    await page.waitForSelector('#image-status:not([hidden])');
    assert.match(await page.textContent('#image-status') ?? '', /cannot show “broken\.png”/);
    assert.equal(await page.isVisible('#preview'), false);
  });

  it('at 390 px no word of any label, heading, button or result breaks across two lines', async (t) => {
    const page = await openPage(t, { width: 390, height: 844 });
    await choose(page, '#image-input', 'first.png', first);
    await page.fill('#question', 'What is it?');
    await page.fill('#top-k', '16');
    await page.click('#ask');
    await page.waitForSelector('#answers li:nth-child(16)');
    await page.fill('#hypothesis', 'There is a gradient.');
    await page.click('#check-entailment');
    await page.waitForSelector('#entailment-scores li');
    // Every word of every visible text node: a word that spans two line boxes has client rects on two lines.
    const broken = (await page.evaluate(`(() => {
      const broken = [];
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!el || el.closest('[hidden], script, style, option, select') || !el.getClientRects().length) continue;
        for (const match of node.data.matchAll(/\\S+/g)) {
          const range = document.createRange();
          range.setStart(node, match.index);
          range.setEnd(node, match.index + match[0].length);
          const tops = new Set(Array.from(range.getClientRects(), (r) => Math.round(r.top)));
          if (tops.size > 1) broken.push(match[0] + ' in <' + el.tagName.toLowerCase() + (el.id ? '#' + el.id : el.className ? '.' + el.className : '') + '>');
        }
      }
      return broken;
    })()`)) as string[];
    assert.deepEqual(broken, []);
    const labels = await page.$$eval('#answers .label', (items) => items.map((i) => i.textContent));
    assert.ok(labels.includes('skateboarding') && labels.includes('contradiction'), `the long labels are among the answers: ${labels.join(', ')}`);
    // Nothing wider than the screen either (a word that cannot break must not push the page sideways).
    assert.equal(await page.evaluate('document.documentElement.scrollWidth'), 390);
    const shot = await page.screenshot({ fullPage: true });
    assert.equal((await sharp(shot).metadata()).width, 390);
    t.diagnostic(`390 px screenshot: ${shot.length} bytes`);
  });
});
