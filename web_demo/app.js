// The web demo's UI.  Everything heavy (model loading, decoding, preprocessing,
// inference) runs in worker.js, so the page stays responsive with a 24 MP photo;
// this file wires the inputs (file chooser, drop, paste, camera, keyboard), draws
// the preview and results, and runs the Self-test action.
//
// For automation (tests/e2e_driver.mjs) it exposes window.sdeployDemo and writes
// the top-5 into the DOM as data attributes (#results li[data-index][data-label][data-probability]).

import { deviceName, deviceReport, errorResult, median, readSelftest, runSelftest } from './selftest.js';

const MODEL_DIR = new URL('model/', import.meta.url);
const WORKER_URL = new URL('worker.js', import.meta.url);
const PREVIEW_SIDE = 480; // CSS pixels

/** An error whose message is meant for the user as is. */
class DemoError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DemoError';
  }
}
const USER_FACING = new Set(['DemoError', 'ContractError']);

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  error: $('error'),
  modelInfo: $('model-info'),
  dropzone: $('dropzone'),
  chooseButton: $('choose-button'),
  fileInput: $('file-input'),
  cameraButton: $('camera-button'),
  camera: $('camera'),
  video: $('video'),
  captureButton: $('capture-button'),
  cameraStop: $('camera-stop'),
  previewFigure: $('preview-figure'),
  preview: $('preview'),
  previewCaption: $('preview-caption'),
  summary: $('summary'),
  notice: $('notice'),
  results: $('results'),
  timing: $('timing'),
  selftestButton: $('selftest-button'),
  selftestVerdict: $('selftest-verdict'),
  selftestMetrics: $('selftest-metrics'),
  reportLink: $('report-link'),
};

const state = {
  engine: null,
  info: null, // what the worker loaded (model, threads, versions)
  lastResult: null,
  lastInput: null, // the typed array fed to the network, for automation
  lastReport: null,
  reportUrl: null,
  stream: null,
  queue: Promise.resolve(),
};

// ---------------------------------------------------------------- the worker

/** Promise-based calls into worker.js (see its message format). */
class Engine {
  constructor(url) {
    this.pending = new Map();
    this.nextId = 1;
    this.worker = new Worker(url, { type: 'module', name: 'sdeploy-engine' });
    this.worker.onmessage = ({ data }) => {
      const call = this.pending.get(data.id);
      if (!call) return;
      this.pending.delete(data.id);
      if (data.ok) {
        call.resolve(data.result);
      } else {
        const error = USER_FACING.has(data.error.name) ? new DemoError(data.error.message) : new Error(data.error.message);
        call.reject(error);
      }
    };
    // A worker that cannot even start (no module workers, a script that fails to load) fails every call.
    this.worker.onerror = (event) => {
      event.preventDefault();
      const error = new DemoError(`The page's worker (worker.js) failed: ${event.message || 'it could not be loaded'}. `
        + 'This demo needs module workers with OffscreenCanvas (Chrome 80+, Safari 16.4+, Firefox 114+).');
      for (const call of this.pending.values()) call.reject(error);
      this.pending.clear();
    };
  }

  call(type, args = {}, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...args }, transfer);
    });
  }
}

/** One job at a time, in order: the worker's session runs one inference at a time anyway. */
function enqueue(job) {
  const run = state.queue.then(job);
  state.queue = run.catch(() => {});
  return run;
}

// ---------------------------------------------------------------- status and errors

function setStatus(text, kind = 'ready') {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

function showError(error) {
  const message = error instanceof DemoError ? error.message : `Unexpected error: ${error && error.message ? error.message : error}`;
  ui.error.textContent = message;
  ui.error.hidden = false;
  if (!state.info) setStatus(message, 'error');
  if (error instanceof DemoError) console.warn(message);
  else console.error(error);
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function setControlsEnabled(enabled) {
  ui.fileInput.disabled = !enabled;
  ui.chooseButton.disabled = !enabled;
  ui.dropzone.setAttribute('aria-disabled', String(!enabled));
  ui.cameraButton.disabled = !enabled;
  ui.selftestButton.disabled = !enabled || !(state.info && state.info.selftestFile);
}

// ---------------------------------------------------------------- loading

function intParam(name) {
  const value = Number(new URLSearchParams(location.search).get(name));
  return Number.isInteger(value) && value > 0 ? value : null;
}

async function init() {
  setControlsEnabled(false);
  setStatus('Loading the model…', 'loading');
  if (location.protocol === 'file:') {
    throw new DemoError('This page must be served over HTTP: run `sdeploy demo web` from the repository root and open the URL it prints.');
  }
  if (typeof Worker !== 'function') throw new DemoError('This browser has no Web Workers; the demo needs Chrome 80+, Safari 16.4+ or Firefox 114+.');
  state.engine = new Engine(WORKER_URL);
  // ?threads=N and ?tile=N override the defaults (benchmarks and tests).
  const info = await state.engine.call('init', { threads: intParam('threads'), tile: intParam('tile') });
  state.info = info;

  const weights = info.weightsKind ? `${info.weightsKind} weights` : 'weights unknown';
  const c = info.contract;
  const text = `${info.arch} · ${info.artifact} (${info.precision}) · ${weights} · ${c.img_size}×${c.img_size} ${info.inputKind === 'pixels' ? 'uint8 RGB' : c.color_order}`
    + ` ${info.inputLayout} → ${info.outputKind} · onnxruntime-web ${info.ortVersion || ''} (${info.accelerator}${info.crossOriginIsolated ? '' : ', page not cross-origin isolated'})`;
  ui.modelInfo.textContent = info.weightsKind === 'random'
    ? `${text}. Random weights: the predictions are meaningless; export pretrained weights for real labels.`
    : text;
  if (!info.selftestFile) ui.selftestVerdict.textContent = 'This bundle has no self-test (model.json has no selftest_file); bundle again with a newer sdeploy.';
  if (navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === 'function') ui.cameraButton.hidden = false;
  setControlsEnabled(true);
  setStatus('Ready: choose, drop or paste an image.', 'ready');
  return info;
}

// ---------------------------------------------------------------- classifying

/** Classify a Blob (file, drop, paste) or an ImageBitmap (camera frame) in the worker, then draw. */
function classifySource(source, description) {
  return enqueue(async () => {
    if (!state.info) throw new DemoError('The model is not loaded yet.');
    setStatus(`Classifying ${description}…`, 'busy');
    clearError();
    const previewMax = Math.round(PREVIEW_SIDE * Math.min(3, window.devicePixelRatio || 1));
    const transfer = typeof ImageBitmap === 'function' && source instanceof ImageBitmap ? [source] : [];
    const { preview, input, ...result } = await state.engine.call('classify', { source, name: description, previewMax }, transfer);
    result.output = Array.from(result.output);
    result.logits = result.output; // the raw model output (logits, or probabilities for output.kind "probabilities")
    state.lastResult = result;
    state.lastInput = input;
    drawPreview(preview, result);
    renderResult(result);
    setStatus(`Classified ${description}.`, 'ready');
    return result;
  });
}

function classifyBlob(blob, description = blob.name || 'the image') {
  return classifySource(blob, description);
}

async function classifyUrl(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new DemoError(`Cannot fetch ${url}: HTTP ${response.status}`);
  return classifyBlob(await response.blob(), url.split('/').pop() || url);
}

function handleUserImage(promise) {
  promise.catch((error) => {
    showError(error);
    ui.summary.textContent = `Not classified: ${error.message}`;
    setStatus('Ready: choose, drop or paste an image.', 'ready');
  });
}

// ---------------------------------------------------------------- drawing

function percent(p) {
  return `${(p * 100).toFixed(2)}%`;
}

function drawPreview(bitmap, result) {
  const canvas = ui.preview;
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  // The bitmap has up to 3 device pixels per CSS pixel; show it PREVIEW_SIDE CSS pixels wide at most.
  const cssWidth = Math.max(bitmap.width / (window.devicePixelRatio || 1), Math.min(bitmap.width, PREVIEW_SIDE));
  const dpr = bitmap.width / cssWidth; // canvas pixels per CSS pixel, for line widths
  canvas.style.width = `${cssWidth}px`;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  // The centre crop the network sees, mapped back to the preview.
  const box = result.crop;
  const sx = canvas.width / box.newWidth;
  const sy = canvas.height / box.newHeight;
  const rect = [box.left * sx + 1, box.top * sy + 1, box.size * sx - 2, box.size * sy - 2];
  ctx.setLineDash([6 * dpr, 4 * dpr]);
  ctx.lineWidth = 2 * dpr;
  ctx.strokeStyle = 'rgba(255, 255, 255, 0.9)';
  ctx.strokeRect(...rect);
  ctx.strokeStyle = 'rgba(0, 0, 0, 0.7)';
  ctx.lineDashOffset = 5 * dpr;
  ctx.strokeRect(...rect);
  const top = result.top5[0];
  canvas.setAttribute('aria-label', `${result.source}, ${result.width} by ${result.height} pixels, with a dashed box around `
    + `the ${box.size} by ${box.size} centre crop the network sees. Top prediction: ${top.label}, ${percent(top.probability)}.`);
  ui.previewCaption.textContent = `${result.source}: ${result.width}×${result.height}, resized to ${box.newWidth}×${box.newHeight}, `
    + `centre crop ${box.size}×${box.size}${result.tiles > 1 ? `, read in ${result.tiles} tiles` : ''}`;
  ui.previewFigure.hidden = false;
}

function renderResult(result) {
  const items = result.top5.map((p, rank) => {
    const li = document.createElement('li');
    li.dataset.rank = String(rank + 1);
    li.dataset.index = String(p.index);
    li.dataset.label = p.label;
    li.dataset.probability = String(p.probability);
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = p.label;
    const prob = document.createElement('span');
    prob.className = 'prob';
    prob.textContent = percent(p.probability);
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0, Math.min(100, p.probability * 100))}%`;
    bar.append(fill);
    li.append(prob, label, bar);
    return li;
  });
  ui.results.replaceChildren(...items);
  ui.results.dataset.state = 'done';
  ui.results.dataset.count = String(Number(ui.results.dataset.count || 0) + 1);
  ui.notice.textContent = result.warnings.join('\n');
  ui.notice.hidden = !result.warnings.length;
  // The live region: screen readers announce the new top prediction (and any warning).
  const [first, ...rest] = result.top5;
  ui.summary.textContent = `${result.source}: ${first.label}, ${percent(first.probability)}. `
    + `Next: ${rest.slice(0, 2).map((p) => `${p.label} ${percent(p.probability)}`).join(', ')}.`
    + (result.warnings.length ? ' Warning: transparent pixels, see the note.' : '');
  ui.timing.dataset.ms = String(result.ms);
  ui.timing.textContent = `${result.ms.toFixed(1)} ms per inference (${state.info.accelerator}) · `
    + `decoding ${result.decodeMs.toFixed(0)} ms · preprocessing ${result.preprocessMs.toFixed(0)} ms`;
}

// ---------------------------------------------------------------- self-test

async function describeDevice() {
  let model = '';
  try {
    if (navigator.userAgentData && navigator.userAgentData.getHighEntropyValues) {
      model = (await navigator.userAgentData.getHighEntropyValues(['model'])).model || '';
    }
  } catch {
    // the model is optional
  }
  return deviceName(navigator.userAgent, model);
}

/** The engine as runSelftest sees it: the worker's classify (the user's path) and its timing loop. */
const selftestEngine = {
  classify: (png, image) => state.engine.call('classify', { source: new Blob([png], { type: 'image/png' }), name: image.name }),
  time: (input, warmup, timed) => state.engine.call('time', { input, warmup, timed }),
};

async function runSelftestAction() {
  ui.selftestButton.disabled = true;
  ui.reportLink.hidden = true;
  ui.selftestMetrics.hidden = true;
  ui.selftestVerdict.dataset.verdict = 'RUNNING';
  ui.selftestVerdict.textContent = 'Running the self-test…';
  let selftest = null;
  let result;
  try {
    const response = await fetch(new URL(state.info.selftestFile, MODEL_DIR), { cache: 'no-store' });
    if (!response.ok) throw new Error(`cannot fetch model/${state.info.selftestFile}: HTTP ${response.status}`);
    selftest = readSelftest(await response.json(), { sha256: state.info.sha256, output: { kind: state.info.outputKind } });
    result = await enqueue(() => runSelftest(selftest, selftestEngine, (step) => {
      ui.selftestVerdict.textContent = `Running the self-test: ${step}…`;
    }));
  } catch (error) {
    result = errorResult(String(error && error.message ? error.message : error));
  }
  const report = deviceReport(selftest, result, {
    modelSha256: state.info.modelSha256,
    runtime: `onnxruntime-web ${state.info.ortVersion}`,
    accelerator: state.info.accelerator,
    device: await describeDevice(),
  });
  state.lastReport = report;
  renderSelftest(report, selftest);
  ui.selftestButton.disabled = false;
  return report;
}

function renderSelftest(report, selftest) {
  const fmt = (v, digits = 3) => (typeof v === 'number' ? v.toExponential(digits) : '–');
  ui.selftestVerdict.dataset.verdict = report.verdict;
  ui.selftestVerdict.textContent = report.verdict === 'ERROR' ? `ERROR: ${report.error}` : `${report.verdict}`
    + ` (${report.images.length} images, ${report.accelerator})`;
  if (report.verdict !== 'ERROR') {
    const tol = selftest.tolerance;
    const rows = [
      ['Max abs error', `${fmt(report.max_abs_error)} (limit ${fmt(tol.atol)})`],
      ['Max relative error', fmt(report.max_rel_error)],
      ['Min cosine', `${report.min_cosine.toFixed(9)} (limit ${tol.min_cosine})`],
      ['Top-1 agreement', `${(report.top1_agreement * 100).toFixed(0)}% (decisive images: ${(report.decisive_top1_agreement * 100).toFixed(0)}%)`],
      ['Median latency', `${report.median_ms.toFixed(2)} ms (${(selftest.runs && selftest.runs.timed) || 10} runs after warm-up)`],
      ['Model sha256', report.model_sha256 ? `${report.model_sha256.slice(0, 16)}…` : 'not computed (no crypto.subtle: not a secure context)'],
    ];
    ui.selftestMetrics.replaceChildren(...rows.flatMap(([name, value]) => {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = value;
      return [dt, dd];
    }));
    ui.selftestMetrics.hidden = false;
  }
  // The report as a download: a Blob behind an <a download>.
  if (state.reportUrl) URL.revokeObjectURL(state.reportUrl);
  state.reportUrl = URL.createObjectURL(new Blob([`${JSON.stringify(report, null, 1)}\n`], { type: 'application/json' }));
  ui.reportLink.href = state.reportUrl;
  ui.reportLink.download = `device-report-web-${report.created.replace(/[-:]/g, '')}.json`;
  ui.reportLink.hidden = false;
}

// ---------------------------------------------------------------- input wiring

function openChooser() {
  if (!ui.fileInput.disabled) ui.fileInput.click();
}

ui.chooseButton.addEventListener('click', openChooser);
ui.dropzone.addEventListener('click', openChooser);
ui.dropzone.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' || event.key === ' ') {
    event.preventDefault(); // Space would scroll the page
    openChooser();
  }
});
ui.fileInput.addEventListener('change', () => {
  const file = ui.fileInput.files && ui.fileInput.files[0];
  if (file) handleUserImage(classifyBlob(file));
  ui.fileInput.value = ''; // choosing the same file again still fires 'change'
});

// Dropping anywhere on the page must not navigate away to the image.
for (const type of ['dragover', 'drop']) document.addEventListener(type, (event) => event.preventDefault());
ui.dropzone.addEventListener('dragenter', () => ui.dropzone.classList.add('dragging'));
ui.dropzone.addEventListener('dragleave', () => ui.dropzone.classList.remove('dragging'));
document.addEventListener('drop', (event) => {
  ui.dropzone.classList.remove('dragging');
  const file = Array.from(event.dataTransfer ? event.dataTransfer.files : []).find((f) => f.type.startsWith('image/'));
  if (!file) {
    showError(new DemoError('Drop an image file (PNG, JPEG, WebP, …).'));
    return;
  }
  handleUserImage(classifyBlob(file));
});
document.addEventListener('paste', (event) => {
  const file = Array.from(event.clipboardData ? event.clipboardData.files : []).find((f) => f.type.startsWith('image/'));
  if (file) handleUserImage(classifyBlob(file, 'the pasted image'));
});

async function startCamera() {
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (error) {
    throw new DemoError(`Cannot open the camera: ${error.message || error.name}. (Browsers allow the camera only on https or localhost.)`);
  }
  ui.video.srcObject = state.stream;
  await ui.video.play();
  ui.camera.hidden = false;
  ui.cameraButton.hidden = true;
}

function stopCamera() {
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  ui.video.srcObject = null;
  ui.camera.hidden = true;
  ui.cameraButton.hidden = false;
}

ui.cameraButton.addEventListener('click', () => handleUserImage(startCamera()));
ui.cameraStop.addEventListener('click', stopCamera);
ui.captureButton.addEventListener('click', () => {
  // An ImageBitmap of the current frame, handed (not copied) to the worker.
  handleUserImage(createImageBitmap(ui.video).then(
    (frame) => classifySource(frame, 'the camera frame'),
    () => {
      throw new DemoError('The camera has no frame yet.');
    },
  ));
});
ui.selftestButton.addEventListener('click', () => runSelftestAction().catch(showError));

// ---------------------------------------------------------------- start

const ready = init();
ready.catch(showError);

/** For automation and the console. */
window.sdeployDemo = {
  ready,
  classifyUrl,
  classifyBlob,
  /** Run the Self-test action; resolves to the device report. */
  selftest: runSelftestAction,
  /** Engine-only times on the last input: {median_ms, times, accelerator}. */
  async benchmark(timed = 20, warmup = 3) {
    const times = await enqueue(() => state.engine.call('time', { warmup, timed }));
    return { median_ms: median(times), times, accelerator: state.info.accelerator, threads: state.info.threads };
  },
  get info() {
    return state.info;
  },
  get lastResult() {
    return state.lastResult;
  },
  /** The last network input exactly as fed (Float32Array for input.kind "tensor", Uint8Array for "pixels"). */
  get lastInput() {
    return state.lastInput;
  },
  get lastReport() {
    return state.lastReport;
  },
};
