// The web demo's UI: load model/model.json + labels + model.onnx, then classify
// images from a file, a drop, a paste or the camera with onnxruntime-web (wasm).
//
// All arithmetic that must match Python lives in preprocess.js; this file only
// decodes images to RGBA, runs the session and draws.  For automation (the
// end-to-end test) it exposes window.sdeployDemo and writes the top-5 into the
// DOM as data attributes (#results li[data-index][data-label][data-probability]).

import { ContractError, checkContract, cropBox, inputShape, parseLabels, preprocess, topK } from './preprocess.js';

const ORT_DIR = new URL('node_modules/onnxruntime-web/dist/', import.meta.url).href;
// The wasm-only ES module build: no WebGL/WebGPU code, fetches ort-wasm-simd-threaded.{mjs,wasm} from ORT_DIR.
const ORT_MODULE = `${ORT_DIR}ort.wasm.min.mjs`;
const MODEL_DIR = new URL('model/', import.meta.url);
const APP_MODEL_SCHEMA = 'sdeploy-app-model/';
const TOP_K = 5;
const BUNDLE_HINT = 'From the repository root run:\n  sdeploy bundle --app web --arch v2_x0_5\nthen reload this page.';

/** An error whose message is meant for the user as is. */
class DemoError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DemoError';
  }
}

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  error: $('error'),
  modelInfo: $('model-info'),
  dropzone: $('dropzone'),
  fileInput: $('file-input'),
  fileLabel: $('file-label'),
  cameraButton: $('camera-button'),
  camera: $('camera'),
  video: $('video'),
  captureButton: $('capture-button'),
  cameraStop: $('camera-stop'),
  previewFigure: $('preview-figure'),
  preview: $('preview'),
  previewCaption: $('preview-caption'),
  results: $('results'),
  timing: $('timing'),
};

const state = {
  ort: null,
  session: null,
  model: null, // model.json
  contract: null,
  labels: null,
  shape: null,
  lastResult: null,
  lastInput: null, // the Float32Array fed to the network, for automation
  stream: null,
  queue: Promise.resolve(),
};

// ---------------------------------------------------------------- status and errors

function setStatus(text, kind = 'ready') {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

function showError(error) {
  const message = error instanceof DemoError || error instanceof ContractError ? error.message : `Unexpected error: ${error && error.message ? error.message : error}`;
  ui.error.textContent = message;
  ui.error.hidden = false;
  if (!state.session) setStatus(message, 'error');
  console.error(error);
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function setControlsEnabled(enabled) {
  ui.fileInput.disabled = !enabled;
  ui.fileLabel.classList.toggle('disabled', !enabled);
  ui.cameraButton.disabled = !enabled;
}

// ---------------------------------------------------------------- loading

async function fetchOrExplain(url, what) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch (error) {
    if (location.protocol === 'file:') {
      throw new DemoError('This page must be served over HTTP: run `sdeploy demo web` from the repository root and open the URL it prints.');
    }
    throw new DemoError(`Cannot fetch ${what} (${url}): ${error.message}`);
  }
  if (response.status === 404) {
    throw new DemoError(`No model is bundled: ${what} was not found at ${new URL(url, location.href).pathname}.\n${BUNDLE_HINT}`);
  }
  if (!response.ok) throw new DemoError(`Cannot fetch ${what}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

async function loadModelJson() {
  const response = await fetchOrExplain(new URL('model.json', MODEL_DIR), 'model/model.json');
  let model;
  try {
    model = await response.json();
  } catch (error) {
    throw new DemoError(`model/model.json is not valid JSON (${error.message}).\n${BUNDLE_HINT}`);
  }
  if (typeof model.schema !== 'string' || !model.schema.startsWith(APP_MODEL_SCHEMA)) {
    throw new DemoError(`model/model.json has schema ${JSON.stringify(model.schema)}, expected ${APP_MODEL_SCHEMA}1.\n${BUNDLE_HINT}`);
  }
  if (model.format !== 'onnx') {
    throw new DemoError(`model/model.json describes a ${model.format} model; the web demo runs ONNX.\n${BUNDLE_HINT}`);
  }
  for (const [key, value] of [['input', model.input], ['output', model.output]]) {
    if (!value || typeof value.name !== 'string') throw new DemoError(`model/model.json has no ${key} name.\n${BUNDLE_HINT}`);
  }
  if (model.input.dtype && model.input.dtype !== 'float32') {
    throw new DemoError(`the model's input is ${model.input.dtype}; the web demo feeds float32.`);
  }
  return model;
}

async function loadLabels(model) {
  const file = model.labels_file || 'labels.txt';
  const response = await fetchOrExplain(new URL(file, MODEL_DIR), `model/${file}`);
  // Decode like Python's read_text("utf-8"): keep a byte-order mark rather than silently dropping it.
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(await response.arrayBuffer());
  const labels = parseLabels(text);
  if (Number.isInteger(model.num_classes) && labels.length !== model.num_classes) {
    throw new DemoError(`model/${file} has ${labels.length} labels but the model has ${model.num_classes} classes.\n${BUNDLE_HINT}`);
  }
  const empty = labels.indexOf('');
  if (empty >= 0) throw new DemoError(`model/${file} has an empty label at line ${empty + 1}.`);
  return labels;
}

async function importOrt() {
  let ort;
  try {
    ort = await import(ORT_MODULE);
  } catch (error) {
    throw new DemoError(`onnxruntime-web is not installed (${ORT_MODULE} did not load: ${error.message}).\nRun \`npm ci\` in web_demo/, then reload this page.`);
  }
  ort.env.wasm.wasmPaths = ORT_DIR; // the .wasm and its loader come from node_modules, never a CDN
  ort.env.wasm.numThreads = 1; // the page is not cross-origin isolated: no SharedArrayBuffer, no threads
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'warning';
  return ort;
}

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function loadModelBytes(model) {
  const file = model.model_file || 'model.onnx';
  const response = await fetchOrExplain(new URL(file, MODEL_DIR), `model/${file}`);
  const bytes = await response.arrayBuffer();
  // crypto.subtle exists in secure contexts (https, localhost, 127.0.0.1): catch a stale or half-copied model.
  if (globalThis.crypto && crypto.subtle && typeof model.sha256 === 'string') {
    const actual = await sha256Hex(bytes);
    if (actual !== model.sha256) {
      throw new DemoError(`model/${file} does not match the sha256 in model/model.json (got ${actual.slice(0, 12)}…, expected ${model.sha256.slice(0, 12)}…).\nRe-run the bundle step:\n  sdeploy bundle --app web --arch ${model.arch || 'v2_x0_5'}`);
    }
  }
  return new Uint8Array(bytes);
}

async function init() {
  setControlsEnabled(false);
  setStatus('Loading the model…', 'loading');
  const model = await loadModelJson();
  const contract = checkContract(model.preprocess);
  const shape = inputShape(model);
  const [labels, ort, bytes] = await Promise.all([loadLabels(model), importOrt(), loadModelBytes(model)]);

  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new DemoError(`onnxruntime-web could not load model/${model.model_file}: ${error.message}`);
  }
  for (const [name, names, what] of [[model.input.name, session.inputNames, 'input'], [model.output.name, session.outputNames, 'output']]) {
    if (!names.includes(name)) {
      throw new DemoError(`model.json names the ${what} "${name}" but the ONNX model has ${names.join(', ')}.\n${BUNDLE_HINT}`);
    }
  }
  Object.assign(state, { ort, session, model, contract, labels, shape });

  // One warm-up run, so the first timing the user sees is not the wasm's lazy initialisation.
  await runSession(new Float32Array(shape.reduce((a, b) => a * b, 1)));

  const weights = model.weights && model.weights.kind ? `${model.weights.kind} weights` : 'weights unknown';
  const info = `${model.arch} · ${model.artifact} (${model.precision}) · ${weights} · ${contract.img_size}×${contract.img_size} ${contract.color_order}`
    + ` · onnxruntime-web ${ort.env.versions ? ort.env.versions.web : ''} (wasm, 1 thread)`;
  ui.modelInfo.textContent = model.weights && model.weights.kind === 'random'
    ? `${info}. Random weights: the predictions are meaningless; export pretrained weights for real labels.`
    : info;
  if (navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === 'function') ui.cameraButton.hidden = false;
  setControlsEnabled(true);
  setStatus('Ready: choose, drop or paste an image.', 'ready');
  return { arch: model.arch, artifact: model.artifact, inputShape: shape, numClasses: labels.length, ortVersion: ort.env.versions ? ort.env.versions.web : null };
}

// ---------------------------------------------------------------- inference

async function runSession(input) {
  const { ort, session, model, shape } = state;
  const tensor = new ort.Tensor('float32', input, shape);
  const start = performance.now();
  const outputs = await session.run({ [model.input.name]: tensor });
  const ms = performance.now() - start;
  const output = outputs[model.output.name];
  if (output.type !== 'float32') throw new DemoError(`the model's output is ${output.type}, expected float32 logits`);
  const count = state.labels ? state.labels.length : output.data.length;
  const logits = Float32Array.from(output.data.subarray(0, count));
  for (const t of Object.values(outputs)) t.dispose();
  tensor.dispose();
  return { logits, ms };
}

/** Decode a Blob to something drawable, honouring EXIF orientation and leaving colours unconverted (as Pillow does). */
async function decodeBlob(blob) {
  if (typeof createImageBitmap === 'function') {
    try {
      return await createImageBitmap(blob, { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    } catch (first) {
      try {
        return await createImageBitmap(blob); // browsers without those options
      } catch {
        const reason = (first.message || 'not an image this browser can read').replace(/\.$/, '');
        throw new DemoError(`Cannot decode ${blob.name || 'the image'}: ${reason}.`);
      }
    }
  }
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return img;
  } catch {
    throw new DemoError(`Cannot decode ${blob.name || 'the image'}: not an image this browser can read.`);
  } finally {
    URL.revokeObjectURL(url);
  }
}

/**
 * Straight RGBA bytes of a drawable.  A 2D canvas stores premultiplied alpha, so
 * getImageData returns un-premultiplied values that are rounded for semi-transparent
 * pixels and 0,0,0 for fully transparent ones (Python drops alpha and keeps the raw
 * RGB).  Opaque images are exact.
 */
function rgbaOf(source, width, height) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height).data;
}

function sizeOf(source) {
  return [source.videoWidth || source.naturalWidth || source.width, source.videoHeight || source.naturalHeight || source.height];
}

function enqueue(job) {
  const run = state.queue.then(job);
  state.queue = run.catch(() => {});
  return run;
}

/** Classify a drawable (ImageBitmap, <img>, <video>, canvas): draw, preprocess, run, render. */
function classifySource(source, description) {
  return enqueue(async () => {
    if (!state.session) throw new DemoError('The model is not loaded yet.');
    const [width, height] = sizeOf(source);
    if (!width || !height) throw new DemoError(`${description} has no pixels yet.`);
    setStatus(`Classifying ${description}…`, 'busy');
    clearError();
    const rgba = rgbaOf(source, width, height);
    drawPreview(source, width, height, description);
    const t0 = performance.now();
    const input = preprocess(rgba, width, height, state.contract);
    const preprocessMs = performance.now() - t0;
    const { logits, ms } = await runSession(input);
    const top5 = topK(logits, TOP_K, state.labels);
    const result = { source: description, width, height, top5, logits: Array.from(logits), ms, preprocessMs, inputShape: state.shape };
    state.lastResult = result;
    state.lastInput = input;
    renderResult(result);
    setStatus(`Classified ${description}.`, 'ready');
    return result;
  });
}

async function classifyBlob(blob, description = blob.name || 'the image') {
  const source = await decodeBlob(blob);
  try {
    return await classifySource(source, description);
  } finally {
    if (typeof source.close === 'function') source.close();
  }
}

async function classifyUrl(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new DemoError(`Cannot fetch ${url}: HTTP ${response.status}`);
  return classifyBlob(await response.blob(), url.split('/').pop() || url);
}

function handleUserImage(promise) {
  promise.catch((error) => {
    showError(error);
    setStatus('Ready: choose, drop or paste an image.', 'ready');
  });
}

// ---------------------------------------------------------------- drawing

function drawPreview(source, width, height, description) {
  const maxSide = 480;
  const k = Math.min(1, maxSide / Math.max(width, height));
  const canvas = ui.preview;
  canvas.width = Math.max(1, Math.round(width * k));
  canvas.height = Math.max(1, Math.round(height * k));
  const ctx = canvas.getContext('2d');
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  // The centre crop the network sees, mapped back to the original image.
  const box = cropBox(width, height, state.contract);
  const sx = (width / box.newWidth) * k;
  const sy = (height / box.newHeight) * k;
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 2;
  ctx.strokeStyle = 'rgba(255, 255, 255, 0.9)';
  ctx.strokeRect(box.left * sx + 1, box.top * sy + 1, box.size * sx - 2, box.size * sy - 2);
  ctx.strokeStyle = 'rgba(0, 0, 0, 0.7)';
  ctx.lineDashOffset = 5;
  ctx.strokeRect(box.left * sx + 1, box.top * sy + 1, box.size * sx - 2, box.size * sy - 2);
  ui.previewCaption.textContent = `${description}: ${width}×${height}, resized to ${box.newWidth}×${box.newHeight}, centre crop ${box.size}×${box.size}`;
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
    prob.textContent = `${(p.probability * 100).toFixed(2)}%`;
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0, Math.min(100, p.probability * 100))}%`;
    bar.append(fill);
    li.append(prob, label, bar);
    return li;
  });
  ui.results.replaceChildren(...items);
  ui.results.dataset.state = 'done';
  ui.results.dataset.count = String(Number(ui.results.dataset.count || 0) + 1);
  ui.timing.dataset.ms = String(result.ms);
  ui.timing.textContent = `${result.ms.toFixed(1)} ms per inference (wasm, 1 thread) · preprocessing ${result.preprocessMs.toFixed(1)} ms`;
}

// ---------------------------------------------------------------- input wiring

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
    throw new DemoError(`Cannot open the camera: ${error.message || error.name}.`);
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
  // Copy the current frame first, so the preview and the classification see the same pixels.
  const [width, height] = sizeOf(ui.video);
  const frame = document.createElement('canvas');
  frame.width = width;
  frame.height = height;
  if (width && height) frame.getContext('2d').drawImage(ui.video, 0, 0, width, height);
  handleUserImage(classifySource(frame, 'the camera frame'));
});

// ---------------------------------------------------------------- start

const ready = init();
ready.catch(showError);

/** For automation and the console: window.sdeployDemo.ready, .classifyUrl(url), .lastResult, .lastInput. */
window.sdeployDemo = {
  ready,
  classifyUrl,
  classifyBlob,
  get lastResult() {
    return state.lastResult;
  },
  /** The last network input (1 x 3 x S x S, CHW float32), exactly as preprocess.js produced it. */
  get lastInput() {
    return state.lastInput;
  },
  get model() {
    return state.model;
  },
};
