// The page's engine, in a module Worker so the page never freezes: it loads the
// bundled model, decodes images, preprocesses them tile by tile on an
// OffscreenCanvas and runs onnxruntime-web (wasm).  The page (app.js) only
// draws.  A user's photo, a camera frame and a self-test image all take the
// same path: classify().
//
// Messages: the page posts {id, type, ...args}; the worker answers
// {id, ok: true, result} or {id, ok: false, error: {name, message}}.  Jobs run
// one at a time, in order (an onnxruntime session runs one inference at a time).

import { CropResizer, parseLabels, topK } from './preprocess.js';
import { makeFeed, readModelJson } from './model.js';
import { sha256Hex } from './selftest.js';
import { SAFARI_CANVAS_LIMIT, TILE, readTiles } from './tiles.js';

const ORT_DIR = new URL('node_modules/onnxruntime-web/dist/', import.meta.url).href;
// The wasm-only ES module build: no WebGL/WebGPU code; it fetches ort-wasm-simd-threaded.{mjs,wasm} from ORT_DIR.
const ORT_MODULE = `${ORT_DIR}ort.wasm.min.mjs`;
const MODEL_DIR = new URL('model/', import.meta.url);
const BUNDLE_HINT = 'From the repository root run:\n  sdeploy bundle --app web --arch v2_x0_5\nthen reload this page.';
const TOP_K = 5;

/** An error whose message is meant for the user as is. */
class DemoError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DemoError';
  }
}

const state = { ort: null, session: null, model: null, labels: null, tile: TILE, lastFeed: null, info: null };

// ---------------------------------------------------------------- loading

async function fetchOrExplain(url, what) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch (error) {
    throw new DemoError(`Cannot fetch ${what} (${url}): ${error.message}`);
  }
  if (response.status === 404) {
    throw new DemoError(`No model is bundled: ${what} was not found at ${new URL(url).pathname}.\n${BUNDLE_HINT}`);
  }
  if (!response.ok) throw new DemoError(`Cannot fetch ${what}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

async function loadModelJson() {
  const response = await fetchOrExplain(new URL('model.json', MODEL_DIR), 'model/model.json');
  let json;
  try {
    json = await response.json();
  } catch (error) {
    throw new DemoError(`model/model.json is not valid JSON (${error.message}).\n${BUNDLE_HINT}`);
  }
  try {
    return readModelJson(json);
  } catch (error) {
    throw new DemoError(`${error.message}.\n${BUNDLE_HINT}`);
  }
}

async function loadLabels(model) {
  const file = model.labelsFile;
  const response = await fetchOrExplain(new URL(file, MODEL_DIR), `model/${file}`);
  // Decode like Python's read_text("utf-8"): keep a byte-order mark rather than silently dropping it.
  const labels = parseLabels(new TextDecoder('utf-8', { ignoreBOM: true }).decode(await response.arrayBuffer()));
  if (model.numClasses !== null && labels.length !== model.numClasses) {
    throw new DemoError(`model/${file} has ${labels.length} labels but the model has ${model.numClasses} classes.\n${BUNDLE_HINT}`);
  }
  const empty = labels.indexOf('');
  if (empty >= 0) throw new DemoError(`model/${file} has an empty label at line ${empty + 1}.`);
  return labels;
}

/** Threads need SharedArrayBuffer, i.e. a cross-origin isolated page (COOP + COEP headers, see demo_server.py). */
function chooseThreads(requested) {
  if (!self.crossOriginIsolated) return 1;
  if (Number.isInteger(requested) && requested >= 1) return requested;
  // One core stays free for the page and the browser (wasm threads spin while they wait, and an
  // oversubscribed core makes every thread slower); the rest, up to 4, run the model: past 4 a model of
  // ~40 M multiply-adds gains nothing.  onnxruntime-web's own default, ceil(cores / 2), leaves half of a
  // phone's 8 cores idle.
  return Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 1) - 1));
}

async function importOrt(threads) {
  let ort;
  try {
    ort = await import(ORT_MODULE);
  } catch (error) {
    throw new DemoError(`onnxruntime-web is not installed (${ORT_MODULE} did not load: ${error.message}).\nRun \`npm ci\` in web_demo/, then reload this page.`);
  }
  ort.env.wasm.wasmPaths = ORT_DIR; // the .wasm and its loader come from node_modules, never a CDN
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false; // this is already a worker
  ort.env.logLevel = 'warning';
  return ort;
}

async function loadModelBytes(model) {
  const file = model.modelFile;
  const response = await fetchOrExplain(new URL(file, MODEL_DIR), `model/${file}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // crypto.subtle exists in secure contexts only (https, localhost, 127.0.0.1): elsewhere the check is skipped.
  const digest = await sha256Hex(bytes);
  if (digest && model.sha256 && digest !== model.sha256) {
    throw new DemoError(`model/${file} does not match the sha256 in model/model.json (got ${digest.slice(0, 12)}…, expected ${model.sha256.slice(0, 12)}…).\nRe-run the bundle step:\n  sdeploy bundle --app web --arch ${model.arch || 'v2_x0_5'}`);
  }
  return { bytes, digest };
}

async function init({ threads = null, tile = null } = {}) {
  if (typeof OffscreenCanvas !== 'function' || typeof createImageBitmap !== 'function') {
    throw new DemoError('This browser cannot decode images in a worker (OffscreenCanvas and createImageBitmap are needed: Chrome 69+, Safari 16.4+, Firefox 105+).');
  }
  if (Number.isInteger(tile) && tile >= 16 && tile <= 4096) state.tile = tile;
  const model = await loadModelJson();
  const numThreads = chooseThreads(threads);
  const [labels, ort, { bytes, digest }] = await Promise.all([loadLabels(model), importOrt(numThreads), loadModelBytes(model)]);
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new DemoError(`onnxruntime-web could not load model/${model.modelFile}: ${error.message}`);
  }
  for (const [name, names, what] of [[model.input.name, session.inputNames, 'input'], [model.output.name, session.outputNames, 'output']]) {
    if (!names.includes(name)) throw new DemoError(`model.json names the ${what} "${name}" but the ONNX model has ${names.join(', ')}.\n${BUNDLE_HINT}`);
  }
  Object.assign(state, { ort, session, model, labels });
  // One warm-up run, so the first timing the user sees is not the wasm's lazy initialisation.
  const size = model.input.dims.reduce((a, b) => a * b, 1);
  state.lastFeed = { type: model.input.type, data: model.input.type === 'uint8' ? new Uint8Array(size) : new Float32Array(size), dims: model.input.dims };
  await run(state.lastFeed);
  const threadsText = `${numThreads} thread${numThreads === 1 ? '' : 's'}`;
  state.info = {
    arch: model.arch, artifact: model.artifact, precision: model.precision, weightsKind: model.weightsKind,
    schemaVersion: model.schemaVersion, sha256: model.sha256, modelSha256: digest, selftestFile: model.selftestFile,
    numClasses: labels.length, inputShape: model.input.dims, inputKind: model.input.kind, inputLayout: model.input.layout,
    outputKind: model.output.kind, contract: model.contract, tile: state.tile,
    ortVersion: ort.env.versions ? ort.env.versions.web : null, threads: numThreads, cores: navigator.hardwareConcurrency || null,
    crossOriginIsolated: self.crossOriginIsolated,
    accelerator: `wasm, ${threadsText}`,
  };
  return state.info;
}

// ---------------------------------------------------------------- inference

/** One engine call; `ms` is session.run's wall time alone. */
async function run(feed) {
  const { ort, session, model } = state;
  const tensor = new ort.Tensor(feed.type, feed.data, feed.dims);
  const start = performance.now();
  const outputs = await session.run({ [model.input.name]: tensor });
  const ms = performance.now() - start;
  const out = outputs[model.output.name];
  try {
    if (out.type !== 'float32') throw new DemoError(`the model's output is ${out.type}, expected float32 ${model.output.kind}`);
    return { output: Float32Array.from(out.data), ms };
  } finally {
    for (const t of Object.values(outputs)) t.dispose();
    tensor.dispose();
  }
}

/** A Blob -> ImageBitmap, EXIF orientation applied (as Pillow's exif_transpose), colours unconverted (Pillow ignores ICC profiles). */
async function decode(blob, name) {
  try {
    return await createImageBitmap(blob, { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (first) {
    try {
      return await createImageBitmap(blob); // browsers without those options
    } catch {
      const reason = (first.message || 'not an image this browser can read').replace(/\.$/, '');
      throw new DemoError(`Cannot decode ${name}: ${reason}. (Very large photos can exceed a phone browser's memory.)`);
    }
  }
}

/** readRect for readTiles: one small canvas, reused; each tile is a 1:1 copy of a source rectangle. */
function tileReader(bitmap, tile) {
  const canvas = new OffscreenCanvas(Math.min(tile, bitmap.width), Math.min(tile, bitmap.height));
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new DemoError('This browser could not create a 2D canvas in the worker.');
  ctx.imageSmoothingEnabled = false; // a 1:1 copy: no filtering at the tile's edges
  ctx.globalCompositeOperation = 'copy'; // replace the previous tile, transparent pixels included
  return (x, y, w, h) => {
    ctx.drawImage(bitmap, x, y, w, h, 0, 0, w, h);
    return ctx.getImageData(0, 0, w, h).data;
  };
}

/** A small copy of the whole image for the page's preview (≤ maxSide on its longer side). */
function preview(bitmap, maxSide) {
  const k = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * k)), Math.max(1, Math.round(bitmap.height * k)));
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.transferToImageBitmap();
}

/** source: a Blob (file, drop, paste, self-test PNG) or an ImageBitmap (camera frame). */
async function classify({ source, name = 'the image', previewMax = 0 }) {
  if (!state.session) throw new DemoError('The model is not loaded yet.');
  const t0 = performance.now();
  const bitmap = source instanceof Blob ? await decode(source, name) : source;
  try {
    const { width, height } = bitmap;
    if (!width || !height) throw new DemoError(`${name} has no pixels.`);
    const t1 = performance.now();
    const resizer = new CropResizer(width, height, state.model.contract);
    let read;
    try {
      read = readTiles(resizer, tileReader(bitmap, state.tile), state.tile);
    } catch (error) {
      if (error.name === 'BlankImageError') throw new DemoError(`Nothing was classified: ${error.message}`);
      throw error;
    }
    const feed = makeFeed(read.pixels, state.model);
    const t2 = performance.now();
    const { output, ms } = await run(feed);
    state.lastFeed = feed;
    const top5 = topK(output.subarray(0, state.labels.length), TOP_K, state.labels, state.model.output.kind);
    const warnings = [];
    if (read.translucent) {
      const share = (100 * read.translucent) / read.area;
      warnings.push(`${name} has transparent pixels (${share < 0.1 ? '<0.1' : share.toFixed(1)}% of the area the crop reads). `
        + 'A browser canvas cannot return their stored colours (fully transparent pixels read as black), so the network '
        + "input differs from Python's, which drops the alpha channel. Opaque images are exact.");
    }
    const result = {
      source: name, width, height, top5, output, logits: output, outputKind: state.model.output.kind, ms,
      decodeMs: t1 - t0, preprocessMs: t2 - t1, tiles: read.tiles, overCanvasLimit: width * height > SAFARI_CANVAS_LIMIT,
      crop: resizer.box, warnings, input: feed.data, inputShape: feed.dims,
    };
    if (previewMax > 0) result.preview = preview(bitmap, previewMax);
    return result;
  } finally {
    bitmap.close();
  }
}

/** Engine-only wall times on one input (the self-test's latency; the threads benchmark). */
async function time({ input = null, warmup = 3, timed = 10 }) {
  const feed = input ? { ...state.lastFeed, data: input } : state.lastFeed;
  for (let i = 0; i < warmup; i++) await run(feed);
  const times = [];
  for (let i = 0; i < timed; i++) times.push((await run(feed)).ms);
  return times;
}

// ---------------------------------------------------------------- messages

const handlers = { init, classify, time };
let queue = Promise.resolve();

self.onmessage = ({ data }) => {
  const { id, type, ...args } = data;
  queue = queue.then(async () => {
    try {
      if (!handlers[type]) throw new Error(`unknown request ${type}`);
      const result = await handlers[type](args);
      self.postMessage({ id, ok: true, result }, result && result.preview ? [result.preview] : []);
    } catch (error) {
      // A refusal meant for the user is expected, not a bug: a warning, not an error, in the console.
      if (['DemoError', 'ContractError'].includes(error.name)) console.warn(error.message);
      else console.error(error);
      self.postMessage({ id, ok: false, error: { name: error.name || 'Error', message: String(error.message || error) } });
    }
  });
};
