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
//   3. for input.kind "tensor": reorder channels to `color_order` (RGB or BGR),
//      then (pixel * scale - mean[c]) / std[c], float32 (normalize);
//      for input.kind "pixels": round to 8 bits, RGB, no scaling (toPixels8).
//
// Steps 1-2 run on tiles (CropResizer): the page never holds the whole photo in
// one canvas, because phones cap a canvas's size (iOS Safari: 16.7 M pixels)
// and read an oversized one back as blank.  The tiled sums are added in the same
// order as one pass over the whole image would add them, so the result is
// bit-identical whatever the tile size.

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
  layout: ['NCHW', 'NHWC'],
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

function checkSize(width, height) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`bad image size ${width}x${height}`);
  }
}

/** Where the crop lies in the resized image: {newWidth, newHeight, left, top, size}. */
export function cropBox(width, height, contract) {
  const c = checkContract(contract);
  const [newWidth, newHeight] = resizedSize(width, height, c.resize_size);
  const size = c.img_size;
  return { newWidth, newHeight, left: Math.floor((newWidth - size) / 2), top: Math.floor((newHeight - size) / 2), size };
}

/** [min lo, max hi) over the rows of resampleWeights that have taps: the source pixels they read. */
function span({ lo, hi }) {
  let a = Infinity;
  let b = -Infinity;
  for (let i = 0; i < lo.length; i++) {
    if (hi[i] > lo[i]) {
      a = Math.min(a, lo[i]);
      b = Math.max(b, hi[i]);
    }
  }
  return a < b ? [a, b] : [0, 0];
}

/**
 * Steps 1-2 fed tile by tile.  `window` is the source rectangle the crop reads
 * ({x0, y0, x1, y1}, exclusive ends); call addTile for tiles that cover it in
 * bands (rows of tiles of equal height), left to right, top to bottom, then
 * result().  Each tile's horizontal sums continue where the previous tile's
 * stopped, and a band's rows go into the vertical sums as soon as the band is
 * complete, so every output is summed in the same order as by a single pass:
 * bit-identical to resizeAndCrop on the whole image, with memory for one band.
 */
export class CropResizer {
  constructor(width, height, contract) {
    checkSize(width, height);
    this.box = cropBox(width, height, contract);
    const { newWidth, newHeight, left, top, size } = this.box;
    this.rows = resampleWeights(height, newHeight, top, size);
    this.cols = resampleWeights(width, newWidth, left, size);
    const [x0, x1] = span(this.cols);
    const [y0, y1] = span(this.rows);
    this.window = { x0, y0, x1, y1 };
    this.out = new Float64Array(size * size * 3);
    this.band = null; // {y, height, nextX, sums: horizontal sums, height x size x 3}
    this.nextY = y0;
    this.done = y0 >= y1;
  }

  /** RGBA bytes (4 per pixel, row-major, `w` wide) of the source rectangle x, y, w, h. */
  addTile(rgba, x, y, w, h) {
    const { x0, x1, y1 } = this.window;
    if (rgba.length !== w * h * 4) throw new RangeError(`tile ${w}x${h} needs ${w * h * 4} RGBA bytes, got ${rgba.length}`);
    const expect = this.band || { y: this.nextY, height: h, nextX: x0 }; // a new band starts where the last ended
    if (y !== expect.y || h !== expect.height || x !== expect.nextX || x + w > x1 || y + h > y1) {
      throw new RangeError(`tile ${x},${y} ${w}x${h} out of order: expected x ${expect.nextX}, row ${expect.y}, height ${expect.height}`);
    }
    if (!this.band) this.band = { y, height: h, nextX: x0, sums: new Float64Array(h * this.box.size * 3) };
    const band = this.band;
    this.horizontal(rgba, x, w, h);
    band.nextX = x + w;
    if (band.nextX === x1) this.vertical();
  }

  /** Horizontal taps that fall inside this tile, added to the band's running sums. */
  horizontal(rgba, x, w, h) {
    const { lo, hi, weights } = this.cols;
    const sums = this.band.sums;
    const size = this.box.size;
    for (let xo = 0; xo < size; xo++) {
      const a = lo[xo];
      const j0 = Math.max(a, x);
      const j1 = Math.min(hi[xo], x + w);
      if (j0 >= j1) continue;
      const taps = weights[xo];
      for (let r = 0; r < h; r++) {
        const src = r * w * 4 - x * 4;
        const o = (r * size + xo) * 3;
        let red = sums[o];
        let green = sums[o + 1];
        let blue = sums[o + 2];
        for (let j = j0; j < j1; j++) {
          const p = src + j * 4;
          const wt = taps[j - a];
          red += wt * rgba[p];
          green += wt * rgba[p + 1];
          blue += wt * rgba[p + 2];
        }
        sums[o] = red;
        sums[o + 1] = green;
        sums[o + 2] = blue;
      }
    }
  }

  /** A complete band: its rows join the vertical sums of every output row that reads them. */
  vertical() {
    const { y, height, sums } = this.band;
    const { lo, hi, weights } = this.rows;
    const stride = this.box.size * 3;
    const out = this.out;
    for (let i = 0; i < this.box.size; i++) {
      const a = lo[i];
      const t0 = Math.max(a, y);
      const t1 = Math.min(hi[i], y + height);
      const o = i * stride;
      for (let t = t0; t < t1; t++) {
        const wt = weights[i][t - a];
        const s = (t - y) * stride;
        for (let k = 0; k < stride; k++) out[o + k] += wt * sums[s + k];
      }
    }
    this.nextY = y + height;
    this.band = null;
    this.done = this.nextY === this.window.y1;
  }

  /** img_size x img_size x 3 RGB pixels in [0, 255] (HWC, float64); throws unless every tile came in. */
  result() {
    if (!this.done) throw new RangeError(`the tiles stopped at row ${this.nextY} of ${this.window.y1}`);
    return this.out;
  }
}

/**
 * Steps 1-2 on a whole image: RGBA bytes (row-major, 4 per pixel) -> Float64Array
 * of img_size x img_size x 3 RGB pixels in [0, 255] (HWC).  Alpha is ignored.
 */
export function resizeAndCrop(rgba, width, height, contract) {
  checkSize(width, height);
  if (!rgba || rgba.length !== width * height * 4) {
    throw new RangeError(`expected ${width * height * 4} RGBA bytes for ${width}x${height}, got ${rgba ? rgba.length : rgba}`);
  }
  const resizer = new CropResizer(width, height, contract);
  const { x0, y0, x1, y1 } = resizer.window;
  if (y1 > y0) {
    // The window as one tile (a copy only when the window is narrower than the image).
    const rows = rgba.subarray(y0 * width * 4, y1 * width * 4);
    const tile = x0 === 0 && x1 === width ? rows : cropColumns(rows, width, x0, x1);
    resizer.addTile(tile, x0, y0, x1 - x0, y1 - y0);
  }
  return resizer.result();
}

function cropColumns(rows, width, x0, x1) {
  const h = rows.length / (width * 4);
  const w = x1 - x0;
  const out = new Uint8ClampedArray(w * h * 4);
  for (let r = 0; r < h; r++) out.set(rows.subarray((r * width + x0) * 4, (r * width + x1) * 4), r * w * 4);
  return out;
}

/**
 * Step 3, input.kind "tensor": HWC RGB pixels in [0, 255] -> Float32Array in the
 * model's colour order, (pixel * scale - mean) / std, laid out as `layout`.
 */
export function normalize(pixels, contract, layout = 'NCHW') {
  const c = checkContract(contract);
  const plane = c.img_size * c.img_size;
  if (pixels.length !== plane * 3) throw new RangeError(`expected ${plane * 3} pixel values, got ${pixels.length}`);
  const out = new Float32Array(plane * 3);
  for (let ch = 0; ch < 3; ch++) {
    const srcCh = c.color_order === 'BGR' ? 2 - ch : ch;
    const mean = c.mean[ch];
    const std = c.std[ch];
    for (let p = 0; p < plane; p++) {
      const at = layout === 'NHWC' ? p * 3 + ch : ch * plane + p;
      out[at] = (pixels[p * 3 + srcCh] * c.scale - mean) / std; // float64 math, rounded once to float32
    }
  }
  return out;
}

/** numpy's rint (round half to even), which Python's preprocess_8bit uses. */
export function rint(x) {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Step 3, input.kind "pixels": HWC RGB pixels in [0, 255] -> Uint8Array rounded
 * to 8 bits (as an app's bitmap holds them), always RGB, no scaling, as `layout`.
 */
export function toPixels8(pixels, layout = 'NHWC') {
  const plane = pixels.length / 3;
  if (!Number.isInteger(plane)) throw new RangeError(`expected RGB pixel triples, got ${pixels.length} values`);
  const out = new Uint8Array(pixels.length);
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = Math.min(255, Math.max(0, rint(pixels[p * 3 + ch])));
      out[layout === 'NCHW' ? ch * plane + p : p * 3 + ch] = v;
    }
  }
  return out;
}

/** RGBA bytes -> the float32 tensor input (CHW unless `layout` says NHWC). */
export function preprocess(rgba, width, height, contract, layout = 'NCHW') {
  return normalize(resizeAndCrop(rgba, width, height, contract), contract, layout);
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
 * Best k classes of one output vector: [{index, label, probability}], best
 * first; ties keep the lower index first and NaN sorts last (Python: predict.top_k).
 * `kind` is model.json's output.kind: softmax turns "logits" into probabilities;
 * "probabilities" (a model exported with --softmax) are shown as they are.
 */
export function topK(logits, k = 5, labels = null, kind = 'logits') {
  const probabilities = kind === 'probabilities' ? logits : softmax(logits);
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
