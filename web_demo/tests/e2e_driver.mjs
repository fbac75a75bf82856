// End-to-end driver: open the served demo in headless Chromium, classify an image
// through the real UI (the file input), read the rendered top-5 and the exposed
// logits, take a screenshot, and print one JSON object to stdout.
//
//   node tests/e2e_driver.mjs --url http://127.0.0.1:8000/ --image cat.png \
//        [--image-url cat.png] [--screenshot out.png] [--error-page URL ...] [--chromium /usr/bin/chromium]
//
// --image-url (relative to --url) also classifies the image by a synthetic drag-and-drop and through
// window.sdeployDemo.classifyUrl; each --error-page is a copy of the demo that must fail to load
// (its error message is reported).
//
// tests/test_web_demo.py (at the repository root) serves a temporary copy of the
// demo, runs this, and compares the result with Python + onnxruntime.
// Exit status: 0 with JSON when the page ran (assertions are the caller's), 1 on a driver failure.

import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    image: { type: 'string' },
    'image-url': { type: 'string' },
    screenshot: { type: 'string' },
    'error-page': { type: 'string', multiple: true, default: [] },
    chromium: { type: 'string', default: process.env.SDEPLOY_CHROMIUM || '/usr/bin/chromium' },
    timeout: { type: 'string', default: '60000' },
  },
});
if (!args.url || !args.image) {
  console.error('usage: e2e_driver.mjs --url URL --image PNG [--image-url REL] [--screenshot OUT.png] [--error-page URL ...]');
  process.exit(2);
}
const timeout = Number(args.timeout);

function watch(page, log) {
  page.on('console', (msg) => log.console.push({ type: msg.type(), text: msg.text() }));
  page.on('pageerror', (error) => log.pageErrors.push(String(error && error.stack ? error.stack : error)));
  page.on('requestfailed', (request) => log.failedRequests.push(`${request.url()}: ${request.failure() ? request.failure().errorText : ''}`));
  page.on('response', (response) => {
    if (response.status() >= 400) log.httpErrors.push(`${response.status()} ${response.url()}`);
  });
}

async function readDom(page) {
  return page.evaluate(() => ({
    top5: Array.from(document.querySelectorAll('#results li'), (li) => ({
      rank: Number(li.dataset.rank),
      index: Number(li.dataset.index),
      label: li.dataset.label,
      probability: Number(li.dataset.probability),
      text: li.textContent,
    })),
    ms: Number(document.getElementById('timing').dataset.ms),
    timingText: document.getElementById('timing').textContent,
    status: document.getElementById('status').textContent,
    errorVisible: !document.getElementById('error').hidden,
    errorText: document.getElementById('error').textContent,
    modelInfo: document.getElementById('model-info').textContent,
    previewVisible: !document.getElementById('preview-figure').hidden,
  }));
}

async function classifyThroughUi(page, out) {
  const log = { console: [], pageErrors: [], failedRequests: [], httpErrors: [] };
  watch(page, log);
  out.log = log;
  await page.goto(args.url, { waitUntil: 'load', timeout });
  out.ready = await page.evaluate(async () => {
    try {
      return { ok: true, info: await window.sdeployDemo.ready };
    } catch (error) {
      return { ok: false, error: String(error && error.message ? error.message : error) };
    }
  });
  if (!out.ready.ok) {
    out.dom = await readDom(page);
    return;
  }
  // The user's path: pick a file in the (hidden) file input, wait for the rendered top-5.
  await page.setInputFiles('#file-input', args.image);
  await page.waitForSelector('#results[data-count="1"] li', { state: 'attached', timeout });
  out.dom = await readDom(page);
  out.lastResult = await page.evaluate(() => window.sdeployDemo.lastResult);
  // The network input itself, as little-endian float32 bytes in base64 (the caller compares it with Python's).
  out.inputF32leB64 = await page.evaluate(() => {
    const input = window.sdeployDemo.lastInput;
    const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  });
  if (args.screenshot) {
    await page.screenshot({ path: args.screenshot, fullPage: true });
    out.screenshot = args.screenshot;
  }
  if (args['image-url']) {
    // Drag and drop, as a browser delivers it: a DragEvent whose DataTransfer holds the file.
    await page.evaluate(async (url) => {
      const blob = await (await fetch(url)).blob();
      const data = new DataTransfer();
      data.items.add(new File([blob], 'dropped.png', { type: blob.type || 'image/png' }));
      document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }, args['image-url']);
    await page.waitForSelector('#results[data-count="2"] li', { state: 'attached', timeout });
    out.dropped = await page.evaluate(() => window.sdeployDemo.lastResult);
    // The automation API on the same image: must give the same logits as the UI path.
    out.classifyUrl = await page.evaluate((url) => window.sdeployDemo.classifyUrl(url), args['image-url']);
  }
}

async function errorPage(page, url) {
  const log = { console: [], pageErrors: [], failedRequests: [], httpErrors: [] };
  watch(page, log);
  await page.goto(url, { waitUntil: 'load', timeout });
  const ready = await page.evaluate(async () => {
    try {
      await window.sdeployDemo.ready;
      return { ok: true };
    } catch (error) {
      return { ok: false, error: String(error && error.message ? error.message : error) };
    }
  });
  const dom = await readDom(page);
  return { url, ready, errorVisible: dom.errorVisible, errorText: dom.errorText, fileInputDisabled: await page.isDisabled('#file-input'), pageErrors: log.pageErrors };
}

const out = { chromium: args.chromium };
let browser;
try {
  browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    timeout,
  });
  out.browserVersion = browser.version();
  const context = await browser.newContext({ viewport: { width: 1100, height: 820 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  out.userAgent = await page.evaluate(() => navigator.userAgent);
  await classifyThroughUi(page, out);
  out.errorPages = [];
  for (const url of args['error-page']) out.errorPages.push(await errorPage(await context.newPage(), url));
  await context.close();
} catch (error) {
  out.driverError = String(error && error.stack ? error.stack : error);
} finally {
  if (browser) await browser.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exitCode = out.driverError ? 1 : 0;
