// Unit tests for ../preprocess.js against Python's golden vectors.
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
  ContractError, checkContract, cropBox, inputShape, normalize, parseLabels, preprocess, pyStrip,
  resampleWeights, resizeAndCrop, resizedSize, softmax, topK,
} from '../preprocess.js';

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

test('inputShape: dynamic batch dimension feeds 1', () => {
  const pre = { img_size: 224, resize_size: 256 };
  assert.deepEqual(inputShape({ preprocess: pre, input: { shape: ['batch', 3, 224, 224] } }), [1, 3, 224, 224]);
  assert.deepEqual(inputShape({ preprocess: pre, input: { shape: [1, 3, 224, 224] } }), [1, 3, 224, 224]);
  assert.throws(() => inputShape({ preprocess: pre, input: { shape: [1, 3, 160, 160] } }), ContractError);
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
