// End-to-end driver: open the served demo in headless Chromium (playwright-core), act
// as a user in one scenario, and print one JSON object to stdout.  The assertions
// are the caller's: tests/test_web_demo.py (at the repository root) serves a
// temporary copy of the demo, runs this, and compares with Python + onnxruntime.
//
//   node tests/e2e_driver.mjs --scenario S --url URL [--url URL2] [--image FILE ...] [options]
//
// Scenarios:
//   classify  each --image through the file input (wall time, main-thread long tasks,
//             rendered top-5, output, network input, warnings); with --image-url also a
//             synthetic drop and sdeployDemo.classifyUrl; each --error-page must fail to load
//   keyboard  keyboard only: Tab to the chooser, Enter/Space on the button and the drop
//             zone open the file chooser (the filechooser event), the result is announced
//   mobile    a 390x844 phone (deviceScaleFactor 3, touch): tap the chooser, check the layout
//   selftest  for each --url: click "Run the self-test", then the report link; the download
//   threads   for each --url: classify --image, then sdeployDemo.benchmark(--runs)
//   memory    a fresh browser per --url: classify --image, then the renderer's peak RSS
//             (VmHWM), CDP JSHeapUsedSize and measureUserAgentSpecificMemory
// Exit status: 0 with JSON when the page ran, 1 on a driver failure (JSON with driverError).

import { readFileSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'classify' },
    url: { type: 'string', multiple: true, default: [] },
    image: { type: 'string', multiple: true, default: [] },
    'image-url': { type: 'string' },
    screenshot: { type: 'string' },
    'error-page': { type: 'string', multiple: true, default: [] },
    runs: { type: 'string', default: '20' },
    chromium: { type: 'string', default: process.env.SDEPLOY_CHROMIUM || '/usr/bin/chromium' },
    timeout: { type: 'string', default: '120000' },
  },
});
if (!args.url.length) {
  console.error('usage: e2e_driver.mjs --scenario classify|keyboard|mobile|selftest|threads|memory --url URL [--image FILE ...]');
  process.exit(2);
}
const timeout = Number(args.timeout);
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

function launch(extraFlags = []) {
  return chromium.launch({ executablePath: args.chromium, headless: true, args: [...FLAGS, ...extraFlags], timeout });
}

function watch(page) {
  const log = { console: [], pageErrors: [], failedRequests: [], httpErrors: [] };
  page.on('console', (msg) => log.console.push({ type: msg.type(), text: msg.text() }));
  page.on('pageerror', (error) => log.pageErrors.push(String(error && error.stack ? error.stack : error)));
  page.on('requestfailed', (request) => log.failedRequests.push(`${request.url()}: ${request.failure() ? request.failure().errorText : ''}`));
  page.on('response', (response) => {
    if (response.status() >= 400) log.httpErrors.push(`${response.status()} ${response.url()}`);
  });
  return log;
}

/** Open the page, record main-thread long tasks, and wait for sdeployDemo.ready. */
async function open(context, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  // Playwright turns file-chooser interception on when the first listener is added, asynchronously: a click
  // before that opens Chromium's own dialog and no filechooser event arrives (a flaky failure). On from the start.
  page.on('filechooser', () => {});
  const log = watch(page);
  await page.addInitScript(() => {
    window.__longTasks = [];
    try {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
      }).observe({ type: 'longtask' });
    } catch {
      // no long task API: the list stays empty
    }
  });
  await page.goto(url, { waitUntil: 'load', timeout });
  const ready = await page.evaluate(async () => {
    try {
      return { ok: true, info: await window.sdeployDemo.ready, crossOriginIsolated: window.crossOriginIsolated };
    } catch (error) {
      return { ok: false, error: String(error && error.message ? error.message : error) };
    }
  });
  return { page, log, ready };
}

async function readDom(page) {
  return page.evaluate(() => {
    const text = (id) => (document.getElementById(id) ? document.getElementById(id).textContent : null);
    return {
      top5: Array.from(document.querySelectorAll('#results li'), (li) => ({
        rank: Number(li.dataset.rank),
        index: Number(li.dataset.index),
        label: li.dataset.label,
        probability: Number(li.dataset.probability),
        text: li.textContent,
      })),
      count: Number(document.getElementById('results').dataset.count),
      ms: Number(document.getElementById('timing').dataset.ms),
      timingText: text('timing'),
      status: text('status'),
      summary: text('summary'),
      summaryLive: document.getElementById('summary') ? document.getElementById('summary').getAttribute('aria-live') : null,
      notice: document.getElementById('notice') && !document.getElementById('notice').hidden ? text('notice') : '',
      errorVisible: !document.getElementById('error').hidden,
      errorText: text('error'),
      modelInfo: text('model-info'),
      previewVisible: !document.getElementById('preview-figure').hidden,
      previewRole: document.getElementById('preview').getAttribute('role'),
      previewLabel: document.getElementById('preview').getAttribute('aria-label'),
      previewCaption: text('preview-caption'),
    };
  });
}

/** The last network input as base64 bytes (little-endian float32, or uint8 for a pixels model). */
async function lastInput(page) {
  return page.evaluate(() => {
    const input = window.sdeployDemo.lastInput;
    const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { type: input.constructor.name, b64: btoa(binary) };
  });
}

/** Wait until the page has rendered `count` results, or shown an error. */
async function settled(page, count) {
  await page.waitForFunction((n) => Number(document.getElementById('results').dataset.count) >= n
    || (!document.getElementById('error').hidden && document.getElementById('status').dataset.state === 'ready'), count, { timeout });
}

/** Choose a file through the input, as the user's chooser does; returns what the page showed. */
async function chooseFile(page, file) {
  const before = await page.evaluate(() => Number(document.getElementById('results').dataset.count));
  await page.evaluate(() => {
    window.__longTasks.length = 0;
  });
  const start = Date.now();
  await page.setInputFiles('#file-input', file);
  await settled(page, before + 1);
  const wallMs = Date.now() - start;
  const dom = await readDom(page);
  const classified = dom.count > before;
  return {
    file: basename(file),
    wallMs,
    longTasks: await page.evaluate(() => window.__longTasks.slice()),
    dom,
    lastResult: classified ? await page.evaluate(() => window.sdeployDemo.lastResult) : null,
    input: classified ? await lastInput(page) : null,
  };
}

// ---------------------------------------------------------------- scenarios

async function classify(browser, out) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 820 }, deviceScaleFactor: 1 });
  const { page, log, ready } = await open(context, args.url[0]);
  Object.assign(out, { log, ready });
  if (!ready.ok) {
    out.dom = await readDom(page);
    return;
  }
  out.images = [];
  for (const [n, file] of args.image.entries()) {
    out.images.push(await chooseFile(page, file));
    if (n === 0 && args.screenshot) {
      await page.screenshot({ path: args.screenshot, fullPage: true });
      out.screenshot = args.screenshot;
    }
  }
  if (args['image-url']) {
    // Drag and drop, as a browser delivers it: a DragEvent whose DataTransfer holds the file.
    const count = await page.evaluate(() => Number(document.getElementById('results').dataset.count));
    await page.evaluate(async (url) => {
      const blob = await (await fetch(url)).blob();
      const data = new DataTransfer();
      data.items.add(new File([blob], 'dropped.png', { type: blob.type || 'image/png' }));
      document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }, args['image-url']);
    await settled(page, count + 1);
    out.dropped = await page.evaluate(() => window.sdeployDemo.lastResult);
    // The automation API on the same image: must give the same output as the UI path.
    out.classifyUrl = await page.evaluate((url) => window.sdeployDemo.classifyUrl(url), args['image-url']);
  }
  out.errorPages = [];
  for (const url of args['error-page']) {
    const errorPage = await open(context, url);
    const dom = await readDom(errorPage.page);
    out.errorPages.push({
      url, ready: errorPage.ready, errorVisible: dom.errorVisible, errorText: dom.errorText, pageErrors: errorPage.log.pageErrors,
      fileInputDisabled: await errorPage.page.isDisabled('#file-input'), chooseDisabled: await errorPage.page.isDisabled('#choose-button'),
    });
  }
}

async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return { id: el ? el.id || el.tagName : null, outline: el ? getComputedStyle(el).outlineStyle : null };
  });
}

async function keyboard(browser, out) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 820 } });
  const { page, log, ready } = await open(context, args.url[0]);
  Object.assign(out, { log, ready });
  if (!ready.ok) return;
  out.fileInputDisplay = await page.evaluate(() => getComputedStyle(document.getElementById('file-input')).display);
  // Tab from the top of the page, recording each stop, until the Self-test button.
  out.tabStops = [];
  for (let i = 0; i < 20; i++) {
    await page.keyboard.press('Tab');
    const stop = await focused(page);
    out.tabStops.push(stop);
    if (stop.id === 'selftest-button') break;
  }
  out.opened = [];
  const image = args.image[0];
  // Each way in: a key on the focused control must open the file chooser; the chosen file is then classified.
  for (const [target, key] of [['choose-button', 'Enter'], ['dropzone', ' '], ['dropzone', 'Enter'], ['choose-button', ' ']]) {
    await page.focus(`#${target}`);
    await page.evaluate(() => window.scrollTo(0, 0));
    const before = await page.evaluate(() => Number(document.getElementById('results').dataset.count));
    const chooser = page.waitForEvent('filechooser', { timeout: 10000 }).catch(() => null);
    const focusedBefore = await page.evaluate(() => document.activeElement && document.activeElement.id);
    await page.keyboard.press(key === ' ' ? 'Space' : key);
    const fileChooser = await chooser;
    const entry = { target, key: key === ' ' ? 'Space' : key, opened: Boolean(fileChooser), scrollY: await page.evaluate(() => window.scrollY), focusedBefore };
    if (fileChooser) {
      await fileChooser.setFiles(image);
      await settled(page, before + 1);
      const dom = await readDom(page);
      Object.assign(entry, { count: dom.count, summary: dom.summary, top1: dom.top5[0] && dom.top5[0].label, previewLabel: dom.previewLabel });
    }
    out.opened.push(entry);
  }
  out.dom = await readDom(page);
}

async function mobile(browser, out) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true,
    userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36',
  });
  const { page, log, ready } = await open(context, args.url[0]);
  Object.assign(out, { log, ready });
  if (!ready.ok) return;
  const chooser = page.waitForEvent('filechooser', { timeout: 10000 });
  await page.tap('#choose-button');
  await (await chooser).setFiles(args.image[0]);
  await settled(page, 1);
  out.dom = await readDom(page);
  out.layout = await page.evaluate(() => {
    const box = (id) => {
      const r = document.getElementById(id).getBoundingClientRect();
      return { width: r.width, height: r.height, left: r.left, right: r.right };
    };
    return {
      innerWidth: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      devicePixelRatio: window.devicePixelRatio,
      choose: box('choose-button'),
      selftest: box('selftest-button'),
      preview: box('preview'),
      previewCanvas: { width: document.getElementById('preview').width, height: document.getElementById('preview').height },
      results: box('results'),
    };
  });
  if (args.screenshot) {
    await page.screenshot({ path: args.screenshot, fullPage: true });
    out.screenshot = args.screenshot;
  }
}

async function selftest(browser, out) {
  out.runs = [];
  for (const url of args.url) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
    const { page, log, ready } = await open(context, url);
    const run = { url, log, ready };
    out.runs.push(run);
    if (!ready.ok) continue;
    run.linkVisibleBefore = await page.isVisible('#report-link');
    const start = Date.now();
    await page.click('#selftest-button');
    await page.waitForFunction(() => ['PASS', 'FAIL', 'ERROR'].includes(document.getElementById('selftest-verdict').dataset.verdict), null, { timeout });
    run.wallMs = Date.now() - start;
    run.verdictText = await page.textContent('#selftest-verdict');
    run.metricsText = await page.textContent('#selftest-metrics');
    const download = page.waitForEvent('download', { timeout: 10000 });
    await page.click('#report-link');
    const file = await download;
    run.downloadName = file.suggestedFilename();
    run.report = JSON.parse(readFileSync(await file.path(), 'utf8'));
    await context.close();
  }
}

async function threads(browser, out) {
  out.runs = [];
  for (const url of args.url) {
    const context = await browser.newContext();
    const { page, log, ready } = await open(context, url);
    const run = { url, log, ready };
    out.runs.push(run);
    if (ready.ok) {
      run.classified = await chooseFile(page, args.image[0]);
      run.benchmark = await page.evaluate((runs) => window.sdeployDemo.benchmark(runs), Number(args.runs));
    }
    await context.close();
  }
}

/** Peak and current RSS of every renderer process this driver's Chromium started (Linux /proc). */
function rendererMemory() {
  const parent = new Map();
  const cmdline = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      cmdline.set(Number(name), readFileSync(`/proc/${name}/cmdline`, 'utf8'));
    } catch {
      // the process ended meanwhile
    }
  }
  const mine = (pid) => {
    for (let p = pid; p > 1; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  const renderers = [];
  for (const [pid, cmd] of cmdline) {
    if (!cmd.includes('--type=renderer') || !mine(pid)) continue;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number((new RegExp(`${key}:\\s+(\\d+)`).exec(status) || [])[1]);
    renderers.push({ pid, peakRssMB: kb('VmHWM') / 1024, rssMB: kb('VmRSS') / 1024 });
  }
  return renderers;
}

async function memory(_, out) {
  out.runs = [];
  for (const url of args.url) {
    // A fresh browser per page, so the renderer's peak RSS belongs to this page alone.
    const browser = await launch(['--enable-blink-features=ForceEagerMeasureMemory']);
    try {
      const context = await browser.newContext();
      const { page, log, ready } = await open(context, url);
      const run = { url, log, ready };
      out.runs.push(run);
      if (!ready.ok) continue;
      const cdp = await context.newCDPSession(page);
      await cdp.send('Performance.enable');
      const heap = async () => {
        const { metrics } = await cdp.send('Performance.getMetrics');
        return metrics.find((m) => m.name === 'JSHeapUsedSize').value / 2 ** 20;
      };
      run.rendererBefore = rendererMemory();
      run.jsHeapBeforeMB = await heap();
      // Sample the page's JS heap while it works (a busy main thread delays the samples, but not the peak RSS).
      let peakHeap = run.jsHeapBeforeMB;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peakHeap = Math.max(peakHeap, await heap().catch(() => 0));
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      run.classified = await chooseFile(page, args.image[0]);
      sampling = false;
      await sampler;
      delete run.classified.input;
      run.jsHeapPeakSampledMB = peakHeap;
      run.jsHeapAfterMB = await heap();
      run.renderer = rendererMemory();
      run.userAgentSpecificMemoryMB = await page.evaluate(async () => {
        if (!window.crossOriginIsolated || !performance.measureUserAgentSpecificMemory) return null;
        return (await performance.measureUserAgentSpecificMemory()).bytes / 2 ** 20;
      });
    } finally {
      await browser.close();
    }
  }
}

const SCENARIOS = { classify, keyboard, mobile, selftest, threads, memory };

const out = { chromium: args.chromium, scenario: args.scenario };
let browser;
try {
  if (!SCENARIOS[args.scenario]) throw new Error(`unknown scenario ${args.scenario}`);
  browser = await launch();
  out.browserVersion = browser.version();
  await SCENARIOS[args.scenario](browser, out);
} catch (error) {
  out.driverError = String(error && error.stack ? error.stack : error);
} finally {
  if (browser) await browser.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exitCode = out.driverError ? 1 : 0;
