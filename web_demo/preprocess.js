// The web demo's half of the input contract: pure functions, no DOM, no runtime.
//
// This file re-implements shufflenet_deploy/preprocess.py (the one definition
// every target and demo follows) plus predict.top_k and the labels-file rules,
// so that the browser feeds the network exactly the tensor `sdeploy classify`
// would.  tests/preprocess.test.mjs checks it against the golden vectors that
// `sdeploy demo golden DIR` writes (1e-5 max abs on every tensor).
//
// Steps, for RGBA pixels (alpha is ignored, as Python drops it):
//   1. resize so the shorter side is `resize_size`; the long side is
//      trunc(resize_size * long / short); separable antialiased triangle
//      filter in float64 (see resampleWeights), no re-quantisation to uint8;
//   2. centre crop img_size x img_size at floor((resized - img_size) / 2);
//   3. reorder channels to `color_order` (RGB or BGR), then
//      (pixel * scale - mean[c]) / std[c], CHW, float32.

/** Thrown for a model.json this code cannot follow (rather than silently mis-preprocessing). */
export class ContractError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ContractError';
  }
}

const SUPPORTED = {
  interpolation: ['bilinear-antialias'],
  crop: ['center'],
  layout: ['NCHW'],
  resize: ['shorter-side'],
  color_order: ['RGB', 'BGR'],
};

/**
 * Validate a model.json `preprocess` block and return a normalised copy.
 * Missing optional keys take the Python defaults (InputContract()).
 */
export function checkContract(contract) {
  if (!contract || typeof contract !== 'object') throw new ContractError('model.json has no "preprocess" object');
  const c = {
    img_size: 224, resize_size: 256, interpolation: 'bilinear-antialias', crop: 'center',
    mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], scale: 1 / 255,
    color_order: 'RGB', layout: 'NCHW', resize: 'shorter-side',
    ...contract,
  };
  for (const [key, allowed] of Object.entries(SUPPORTED)) {
    if (!allowed.includes(c[key])) {
      throw new ContractError(`unsupported preprocess.${key} "${c[key]}" (this demo supports: ${allowed.join(', ')})`);
    }
  }
  for (const key of ['img_size', 'resize_size']) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new ContractError(`preprocess.${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.resize_size < c.img_size) {
    throw new ContractError(`preprocess.resize_size ${c.resize_size} is smaller than img_size ${c.img_size}`);
  }
  for (const key of ['mean', 'std']) {
    if (!Array.isArray(c[key]) || c[key].length !== 3 || !c[key].every(Number.isFinite)) {
      throw new ContractError(`preprocess.${key} must be 3 numbers`);
    }
  }
  if (c.std.some((v) => v === 0)) throw new ContractError('preprocess.std has a zero');
  if (!Number.isFinite(c.scale)) throw new ContractError('preprocess.scale must be a number');
  return c;
}

/** [width, height] after scaling the shorter side to `shorter` (Python: resized_size). */
export function resizedSize(width, height, shorter) {
  if (width <= height) return [shorter, Math.trunc((shorter * height) / width)];
  return [Math.trunc((shorter * width) / height), shorter];
}

/**
 * Sparse rows of Python's resample_weights(inSize, outSize) for outputs
 * first .. first+count-1: {lo: Int32Array, hi: Int32Array, weights: Float64Array[]}.
 *
 *   center = (i + 0.5) * scale,  support = max(scale, 1)
 *   lo = max(trunc(center - support + 0.5), 0),  hi = min(trunc(center + support + 0.5), in)
 *   w_j = max(0, 1 - |(j + 0.5 - center) / support|), normalised to sum 1
 */
export function resampleWeights(inSize, outSize, first = 0, count = outSize) {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1.0);
  const lo = new Int32Array(count);
  const hi = new Int32Array(count);
  const weights = new Array(count);
  for (let n = 0; n < count; n++) {
    const center = (first + n + 0.5) * scale;
    const a = Math.max(Math.trunc(center - support + 0.5), 0);
    const b = Math.min(Math.trunc(center + support + 0.5), inSize);
    const taps = new Float64Array(Math.max(b - a, 0));
    let sum = 0;
    for (let j = a; j < b; j++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - center) / support));
      taps[j - a] = w;
      sum += w;
    }
    for (let t = 0; t < taps.length; t++) taps[t] /= sum;
    lo[n] = a;
    hi[n] = b;
    weights[n] = taps;
  }
  return { lo, hi, weights };
}

function checkPixels(rgba, width, height) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`bad image size ${width}x${height}`);
  }
  if (!rgba || rgba.length !== width * height * 4) {
    throw new RangeError(`expected ${width * height * 4} RGBA bytes for ${width}x${height}, got ${rgba ? rgba.length : rgba}`);
  }
}

/** Where the crop lies in the resized image: {newWidth, newHeight, left, top, size}. */
export function cropBox(width, height, contract) {
  const c = checkContract(contract);
  const [newWidth, newHeight] = resizedSize(width, height, c.resize_size);
  const size = c.img_size;
  return { newWidth, newHeight, left: Math.floor((newWidth - size) / 2), top: Math.floor((newHeight - size) / 2), size };
}

/**
 * Steps 1-2: RGBA bytes (row-major, 4 per pixel) -> Float64Array of
 * img_size x img_size x 3 RGB pixels in [0, 255] (HWC).  Alpha is ignored.
 * Only the rows and columns inside the crop window are computed.
 */
export function resizeAndCrop(rgba, width, height, contract) {
  checkPixels(rgba, width, height);
  const { newWidth, newHeight, left, top, size } = cropBox(width, height, contract);
  const rows = resampleWeights(height, newHeight, top, size);
  const cols = resampleWeights(width, newWidth, left, size);

  // Horizontal pass over the input rows any crop row reads: tmp[y - y0][x][c].
  let y0 = height;
  let y1 = 0;
  for (let i = 0; i < size; i++) {
    if (rows.hi[i] > rows.lo[i]) {
      y0 = Math.min(y0, rows.lo[i]);
      y1 = Math.max(y1, rows.hi[i]);
    }
  }
  const tmp = new Float64Array(Math.max(y1 - y0, 0) * size * 3);
  for (let y = y0; y < y1; y++) {
    const src = y * width * 4;
    const dst = (y - y0) * size * 3;
    for (let x = 0; x < size; x++) {
      const taps = cols.weights[x];
      const a = cols.lo[x];
      let r = 0;
      let g = 0;
      let b = 0;
      for (let t = 0; t < taps.length; t++) {
        const p = src + (a + t) * 4;
        const w = taps[t];
        r += w * rgba[p];
        g += w * rgba[p + 1];
        b += w * rgba[p + 2];
      }
      const o = dst + x * 3;
      tmp[o] = r;
      tmp[o + 1] = g;
      tmp[o + 2] = b;
    }
  }

  // Vertical pass.
  const out = new Float64Array(size * size * 3);
  const rowStride = size * 3;
  for (let i = 0; i < size; i++) {
    const taps = rows.weights[i];
    const a = rows.lo[i] - y0;
    const o = i * rowStride;
    for (let t = 0; t < taps.length; t++) {
      const w = taps[t];
      const s = (a + t) * rowStride;
      for (let k = 0; k < rowStride; k++) out[o + k] += w * tmp[s + k];
    }
  }
  return out;
}

/** Step 3: HWC RGB pixels in [0, 255] -> CHW Float32Array in the model's colour order and scale. */
export function normalize(pixels, contract) {
  const c = checkContract(contract);
  const size = c.img_size;
  const plane = size * size;
  if (pixels.length !== plane * 3) throw new RangeError(`expected ${plane * 3} pixel values, got ${pixels.length}`);
  const out = new Float32Array(plane * 3);
  for (let ch = 0; ch < 3; ch++) {
    const srcCh = c.color_order === 'BGR' ? 2 - ch : ch;
    const mean = c.mean[ch];
    const std = c.std[ch];
    const base = ch * plane;
    for (let p = 0; p < plane; p++) {
      out[base + p] = (pixels[p * 3 + srcCh] * c.scale - mean) / std; // float64 math, rounded once to float32
    }
  }
  return out;
}

/** RGBA bytes -> the network's input: 3 x img_size x img_size Float32Array (CHW). */
export function preprocess(rgba, width, height, contract) {
  return normalize(resizeAndCrop(rgba, width, height, contract), contract);
}

/**
 * The NCHW input shape to feed: [1, 3, img_size, img_size].  model.json's batch
 * dimension may be a string ("batch") for dynamic-batch exports; the demo feeds 1.
 */
export function inputShape(modelJson) {
  const c = checkContract(modelJson.preprocess);
  const shape = modelJson.input && modelJson.input.shape;
  if (Array.isArray(shape) && shape.length === 4) {
    const [, channels, h, w] = shape;
    if ((Number.isInteger(h) && h !== c.img_size) || (Number.isInteger(w) && w !== c.img_size) || (Number.isInteger(channels) && channels !== 3)) {
      throw new ContractError(`model input shape [${shape}] does not match preprocess.img_size ${c.img_size}`);
    }
  }
  return [1, 3, c.img_size, c.img_size];
}

/**
 * Softmax in float64 (Python: predict.softmax).  For float32 logits the
 * subtraction of the maximum is rounded to float32 first, as numpy does.
 */
export function softmax(logits) {
  const f32 = logits instanceof Float32Array;
  let max = -Infinity;
  for (const v of logits) {
    if (Number.isNaN(v)) {
      max = NaN; // numpy's max propagates NaN
      break;
    }
    if (v > max) max = v;
  }
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const shifted = f32 ? Math.fround(logits[i] - max) : logits[i] - max;
    out[i] = Math.exp(shifted);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/**
 * Best k classes of one logit vector: [{index, label, probability}], best
 * first; ties keep the lower index first and NaN sorts last (Python: predict.top_k).
 */
export function topK(logits, k = 5, labels = null) {
  const probabilities = softmax(logits);
  const order = Array.from({ length: logits.length }, (_, i) => i);
  order.sort((a, b) => {
    const x = logits[a];
    const y = logits[b];
    const xn = Number.isNaN(x);
    const yn = Number.isNaN(y);
    if (xn || yn) return xn === yn ? 0 : xn ? 1 : -1;
    return x > y ? -1 : x < y ? 1 : 0; // Array.prototype.sort is stable: equal scores keep index order
  });
  return order.slice(0, k).map((index) => ({
    index,
    label: labels && index < labels.length ? labels[index] : `class_${index}`,
    probability: probabilities[index],
  }));
}

// Python's str.splitlines() boundaries and str.strip() whitespace, so a labels
// file parses exactly as shufflenet_deploy.labels.read_labels_file parses it.
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;
const PY_SPACE = '[\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, 'g');
const BLANK = new RegExp(`^${PY_SPACE}*$`);

/** Python's str.strip() (JavaScript's trim() differs: it strips U+FEFF and keeps U+001C..U+001F). */
export function pyStrip(text) {
  return text.replace(STRIP, '');
}

/** One label per line (LF, CRLF or CR), trailing blank lines dropped, each label trimmed. */
export function parseLabels(text) {
  const lines = text.split(LINE_BREAK);
  while (lines.length && BLANK.test(lines[lines.length - 1])) lines.pop();
  return lines.map(pyStrip);
}
