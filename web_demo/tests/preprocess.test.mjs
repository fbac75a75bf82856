// Unit tests for ../preprocess.js and ../tiles.js against Python's golden vectors.
//
//   sdeploy demo golden /tmp/golden            (from the repository root)
//   SDEPLOY_GOLDEN_DIR=/tmp/golden node --test tests/preprocess.test.mjs   (in web_demo/)
//
// tests/test_web_demo.py runs this with a freshly written golden directory.
// Without SDEPLOY_GOLDEN_DIR the golden tests are skipped (and say so).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  ContractError, CropResizer, checkContract, cropBox, normalize, parseLabels, preprocess, pyStrip,
  resampleWeights, resizeAndCrop, resizedSize, rint, softmax, toPixels8, topK,
} from '../preprocess.js';
import { BlankImageError, readTiles } from '../tiles.js';

const TENSOR_ATOL = 1e-5;
const PROB_ATOL = 1e-6;

const GOLDEN_DIR = process.env.SDEPLOY_GOLDEN_DIR;
const NO_GOLDEN = GOLDEN_DIR ? false : 'SDEPLOY_GOLDEN_DIR is not set (write one with: sdeploy demo golden DIR)';
const golden = GOLDEN_DIR ? JSON.parse(readFileSync(join(GOLDEN_DIR, 'golden.json'), 'utf8')) : null;

function bytes(b64) {
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

function float32le(b64) {
  const raw = bytes(b64);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Float32Array.from({ length: raw.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

function float64le(b64) {
  const raw = bytes(b64);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Float64Array.from({ length: raw.byteLength / 8 }, (_, i) => view.getFloat64(i * 8, true));
}

/** Largest |actual - expected| and where; NaN anywhere counts as infinitely wrong. */
function maxAbsDiff(actual, expected) {
  assert.equal(actual.length, expected.length, `length ${actual.length} != expected ${expected.length}`);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    const diff = Number.isNaN(d) ? Infinity : d;
    if (diff > worst) {
      worst = diff;
      at = i;
    }
  }
  return { worst, at };
}

function assertClose(actual, expected, atol, what) {
  const { worst, at } = maxAbsDiff(actual, expected);
  assert.ok(
    worst <= atol,
    `${what}: max abs diff ${worst.toExponential(3)} > ${atol} at element ${at} (got ${actual[at]}, expected ${expected[at]})`,
  );
  return worst;
}

describe('golden preprocessing (every image x contract)', { skip: NO_GOLDEN }, () => {
  const cases = golden ? golden.images : [];
  const contracts = golden ? golden.contracts : {};
  let overall = 0;
  for (const image of cases) {
    for (const [key, contract] of Object.entries(contracts)) {
      test(`${image.name} (${image.width}x${image.height}) / ${key}`, () => {
        const rgba = new Uint8ClampedArray(bytes(image.rgba_b64));
        assert.equal(rgba.length, image.width * image.height * 4);
        const expected = float32le(image.tensors[key].tensor_f32le_b64);
        const actual = preprocess(rgba, image.width, image.height, contract);
        assert.ok(actual instanceof Float32Array);
        assert.equal(actual.length, 3 * contract.img_size * contract.img_size);
        overall = Math.max(overall, maxAbsDiff(actual, expected).worst);
        assertClose(actual, expected, TENSOR_ATOL, `${image.name}/${key}`);
      });
    }
  }
  test('report', () => {
    console.log(`golden tensors: max abs diff ${overall.toExponential(3)} over ${cases.length} images x ${Object.keys(contracts).length} contracts`);
  });
});

/** The image's pixels as tiles of `tile` pixels, in the order readTiles asks for them. */
function tileReader(rgba, width) {
  return (x, y, w, h) => {
    const out = new Uint8ClampedArray(w * h * 4);
    for (let r = 0; r < h; r++) out.set(rgba.subarray(((y + r) * width + x) * 4, ((y + r) * width + x + w) * 4), r * w * 4);
    return out;
  };
}

describe('golden preprocessing read in tiles (bit-identical to one pass)', { skip: NO_GOLDEN }, () => {
  for (const image of golden ? golden.images : []) {
    for (const [key, contract] of Object.entries(golden.contracts)) {
      test(`${image.name} / ${key}`, () => {
        const rgba = new Uint8ClampedArray(bytes(image.rgba_b64));
        const whole = resizeAndCrop(rgba, image.width, image.height, contract);
        for (const tile of [1, 5, 16, 1024]) {
          const { pixels, tiles } = readTiles(new CropResizer(image.width, image.height, contract), tileReader(rgba, image.width), tile);
          assert.deepEqual(pixels, whole, `tile ${tile} (${tiles} tiles)`);
        }
      });
    }
  }
});

/** HWC -> CHW for uint8 RGB. */
function chw(hwc) {
  const plane = hwc.length / 3;
  return Uint8Array.from({ length: hwc.length }, (_, i) => hwc[(i % plane) * 3 + Math.floor(i / plane)]);
}

// input.kind "pixels": the resized crop rounded to 8 bits (numpy's rint), RGB whatever the contract's colour order.
describe('golden 8-bit pixels (input.kind "pixels")', { skip: NO_GOLDEN }, () => {
  let ties = 0;
  for (const image of golden ? golden.images : []) {
    for (const [key, contract] of Object.entries(golden.contracts)) {
      test(`${image.name} / ${key}`, () => {
        const rgba = new Uint8ClampedArray(bytes(image.rgba_b64));
        const nhwc = toPixels8(resizeAndCrop(rgba, image.width, image.height, contract), 'NHWC');
        assert.deepEqual(toPixels8(resizeAndCrop(rgba, image.width, image.height, contract), 'NCHW'), chw(nhwc));
        const entry = image.tensors[key];
        if (entry.pixels_u8_b64) {
          // The float64 resize is Python's to ~1e-13 (another summation order), so the 8-bit values are
          // np.rint's, except where Python's value is an exact .5 tie: there the last ulp decides either way.
          const exact = float64le(entry.pixels_f64le_b64);
          assertClose(resizeAndCrop(rgba, image.width, image.height, contract), exact, 1e-9, `${image.name}/${key} float64 pixels`);
          const python = bytes(entry.pixels_u8_b64);
          for (let i = 0; i < nhwc.length; i++) {
            if (nhwc[i] === python[i]) continue;
            const tie = Math.abs(exact[i] - Math.floor(exact[i]) - 0.5) <= 1e-9;
            assert.ok(tie && Math.abs(nhwc[i] - python[i]) === 1, `pixel ${i}: ${nhwc[i]} vs Python's ${python[i]} (from ${exact[i]})`);
            ties++;
          }
        } else {
          // Older golden files have only the normalised tensor: each pixel must be within half a level of it.
          const c = checkContract(contract);
          const tensor = float32le(entry.tensor_f32le_b64);
          const plane = c.img_size * c.img_size;
          for (let i = 0; i < nhwc.length; i++) {
            const p = Math.floor(i / 3);
            const ch = c.color_order === 'BGR' ? 2 - (i % 3) : i % 3;
            const value = (tensor[ch * plane + p] * c.std[ch] + c.mean[ch]) / c.scale;
            assert.ok(Math.abs(nhwc[i] - value) <= 0.5 + 1e-3, `pixel ${i}: ${nhwc[i]} vs ${value}`);
          }
        }
      });
    }
  }
  test('report', () => {
    console.log(`golden 8-bit pixels: ${ties} values on an exact .5 tie rounded the other way`);
  });
});

describe('golden top-k and softmax', { skip: NO_GOLDEN }, () => {
  for (const [n, tc] of (golden ? golden.topk : []).entries()) {
    test(`case ${n}`, () => {
      const logits = float64le(tc.logits_f64le_b64);
      const best = topK(logits, tc.k);
      assert.deepEqual(best.map((p) => p.index), tc.indices);
      assertClose(best.map((p) => p.probability), tc.probabilities, PROB_ATOL, 'top-k probabilities');
      assertClose(softmax(logits), float64le(tc.softmax_f64le_b64), 1e-12, 'softmax');
    });
  }
});

describe('golden labels', { skip: NO_GOLDEN }, () => {
  for (const [n, tc] of (golden ? golden.labels : []).entries()) {
    test(`case ${n}: ${JSON.stringify(tc.text)}`, () => {
      assert.deepEqual(parseLabels(tc.text), tc.labels);
    });
  }
});

// ---------------------------------------------------------------- no golden needed

test('the tensor check rejects a 1e-4 error (negative control)', () => {
  const expected = new Float32Array([0.5, -1.25, 2.0, 0.0]);
  const wrong = Float32Array.from(expected);
  wrong[2] += 1e-4;
  assert.throws(() => assertClose(wrong, expected, TENSOR_ATOL, 'control'), /max abs diff 9\.99\de-5 > 0\.00001 at element 2/);
  assert.throws(() => assertClose(new Float32Array([NaN, 0, 2, 0]), expected, TENSOR_ATOL, 'nan'), /Infinity/);
  assert.equal(assertClose(expected, expected, TENSOR_ATOL, 'same'), 0);
});

test('resizedSize: shorter side, long side truncated', () => {
  assert.deepEqual(resizedSize(97, 61, 256), [407, 256]); // 256 * 97 / 61 = 407.08
  assert.deepEqual(resizedSize(50, 83, 256), [256, 424]); // 424.96 -> 424, not rounded
  assert.deepEqual(resizedSize(46, 46, 46), [46, 46]);
});

test('resampleWeights: rows sum to 1; identity when sizes match', () => {
  const down = resampleWeights(100, 37);
  for (const taps of down.weights) assert.ok(Math.abs(taps.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  const same = resampleWeights(5, 5);
  for (let i = 0; i < 5; i++) {
    assert.equal(same.lo[i], i);
    assert.deepEqual(Array.from(same.weights[i]).filter((w) => w > 0), [1]);
  }
});

test('alpha is ignored, not premultiplied', () => {
  const contract = { img_size: 2, resize_size: 2, mean: [0, 0, 0], std: [1, 1, 1], scale: 1 };
  const opaque = new Uint8ClampedArray([10, 20, 30, 255, 40, 50, 60, 255, 70, 80, 90, 255, 100, 110, 120, 255]);
  const clear = Uint8ClampedArray.from(opaque, (v, i) => (i % 4 === 3 ? 0 : v));
  assert.deepEqual(preprocess(clear, 2, 2, contract), preprocess(opaque, 2, 2, contract));
  assert.deepEqual(Array.from(preprocess(opaque, 2, 2, contract)), [10, 40, 70, 100, 20, 50, 80, 110, 30, 60, 90, 120]);
});

test('BGR contracts reverse the channels (mean/std in model order)', () => {
  const contract = { img_size: 1, resize_size: 1, mean: [1, 2, 3], std: [1, 1, 2], scale: 1, color_order: 'BGR' };
  const rgba = new Uint8ClampedArray([10, 20, 30, 255]);
  assert.deepEqual(Array.from(preprocess(rgba, 1, 1, contract)), [30 - 1, 20 - 2, (10 - 3) / 2]);
  const pixels = resizeAndCrop(rgba, 1, 1, contract);
  assert.deepEqual(Array.from(pixels), [10, 20, 30]);
  assert.deepEqual(Array.from(normalize(pixels, { ...contract, color_order: 'RGB' })), [9, 18, 13.5]);
});

test('cropBox: floor offsets', () => {
  assert.deepEqual(cropBox(97, 61, { img_size: 40, resize_size: 46 }), { newWidth: 73, newHeight: 46, left: 16, top: 3, size: 40 });
});

test('contract validation', () => {
  assert.throws(() => checkContract({ interpolation: 'nearest' }), ContractError);
  assert.throws(() => checkContract({ color_order: 'GRB' }), /color_order/);
  assert.throws(() => checkContract({ img_size: 300, resize_size: 256 }), /smaller/);
  assert.throws(() => checkContract({ std: [1, 0, 1] }), /zero/);
  assert.equal(checkContract({}).scale, 1 / 255);
});

test('rint rounds half to even, as numpy', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 254.5, 3.4999999, 3.5000001, 0, 255, 7.25].map(rint), [0, 2, 2, 254, 3, 4, 0, 255, 7]);
});

test('toPixels8: rounding, clamping, NHWC and NCHW', () => {
  const pixels = new Float64Array([0.5, 1.5, 254.9, -1e-12, 255.0000001, 128.5]);
  assert.deepEqual(Array.from(toPixels8(pixels, 'NHWC')), [0, 2, 255, 0, 255, 128]);
  assert.deepEqual(Array.from(toPixels8(pixels, 'NCHW')), [0, 0, 2, 255, 255, 128]);
});

test('normalize lays out NHWC when asked', () => {
  const contract = { img_size: 1, resize_size: 1, mean: [0, 0, 0], std: [1, 1, 1], scale: 1 };
  const pixels = new Float64Array([1, 2, 3]);
  assert.deepEqual(Array.from(normalize(pixels, contract, 'NHWC')), [1, 2, 3]);
  const two = { ...contract, img_size: 2, resize_size: 2 };
  const px = Float64Array.from({ length: 12 }, (_, i) => i);
  assert.deepEqual(Array.from(normalize(px, two, 'NCHW')), [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
  assert.deepEqual(Array.from(normalize(px, two, 'NHWC')), Array.from(px));
});

test('CropResizer: the window is what the crop reads, tiles must come in order', () => {
  const contract = { img_size: 40, resize_size: 46 };
  const resizer = new CropResizer(4000, 200, contract); // a wide panorama: most columns are never read
  const { x0, y0, x1, y1 } = resizer.window;
  assert.ok(x0 > 1000 && x1 < 3000 && y0 >= 0 && y1 <= 200, JSON.stringify(resizer.window));
  const tile = new Uint8ClampedArray(16 * 16 * 4);
  assert.throws(() => resizer.addTile(tile, x0 + 16, y0, 16, 16), /out of order: expected x \d+, row \d+/);
  assert.throws(() => resizer.addTile(tile, x0, y0 + 16, 16, 16), /out of order/);
  assert.throws(() => resizer.result(), /tiles stopped/);
  resizer.addTile(tile, x0, y0, 16, 16); // a refused tile changed nothing
  assert.throws(() => resizer.addTile(tile.subarray(0, 16 * 8 * 4), x0 + 16, y0, 16, 8), /height 16/);
});

test('readTiles refuses a blank readback and counts transparent pixels', () => {
  const contract = { img_size: 8, resize_size: 8 };
  const blank = () => (x, y, w, h) => new Uint8ClampedArray(w * h * 4);
  assert.throws(() => readTiles(new CropResizer(30, 20, contract), blank(), 7), BlankImageError);
  assert.throws(() => readTiles(new CropResizer(30, 20, contract), () => null, 7), BlankImageError);
  // Opaque black is a real image, not a failed readback.
  const black = (x, y, w, h) => Uint8ClampedArray.from({ length: w * h * 4 }, (_, i) => (i % 4 === 3 ? 255 : 0));
  const read = readTiles(new CropResizer(30, 20, contract), black, 7);
  assert.equal(read.translucent, 0);
  assert.ok(read.tiles > 1 && read.pixels.every((v) => v === 0));
  const half = (x, y, w, h) => Uint8ClampedArray.from({ length: w * h * 4 }, (_, i) => (i % 4 === 3 ? ((i >> 2) % 2 ? 255 : 0) : 9));
  const translucent = readTiles(new CropResizer(30, 20, contract), half, 7);
  assert.ok(translucent.translucent > 0 && translucent.translucent < translucent.area);
});

test('topK: probabilities are shown as they are (no softmax)', () => {
  const probabilities = new Float32Array([0.1, 0.6, 0.3]);
  const best = topK(probabilities, 2, null, 'probabilities');
  assert.deepEqual(best.map((p) => [p.index, p.probability]), [[1, probabilities[1]], [2, probabilities[2]]]);
  assert.notEqual(topK(probabilities, 1)[0].probability, probabilities[1]); // logits would be softmaxed
});

test('topK: ties keep the lower index, NaN last, labels attached', () => {
  const logits = new Float32Array([1, 3, NaN, 3, 2]);
  assert.deepEqual(topK(logits, 5).map((p) => p.index), [1, 3, 4, 0, 2]);
  const best = topK(new Float32Array([0, 2, 1]), 2, ['a', 'b', 'c']);
  assert.deepEqual(best.map((p) => p.label), ['b', 'c']);
  assert.ok(Math.abs(best[0].probability - Math.exp(2) / (1 + Math.exp(1) + Math.exp(2))) < 1e-7);
});

test('parseLabels / pyStrip follow Python splitlines() and strip()', () => {
  // Expected values are Python's: [l.strip() for l in text.splitlines()] minus trailing blank lines.
  assert.deepEqual(parseLabels(''), []);
  assert.deepEqual(parseLabels('a\rb\r\n\nc\u2028d'), ['a', 'b', '', 'c', 'd']);
  assert.deepEqual(parseLabels('x\n \t\n\u3000\n'), ['x']);
  assert.equal(pyStrip('\ufeffcat '), '\ufeffcat'); // Python keeps a BOM; JavaScript's trim() would not
  assert.equal(pyStrip('\x1fdog\xa0'), 'dog');
});
