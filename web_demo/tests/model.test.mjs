// Unit tests for ../model.js: reading model.json schema 1 and 2 (docs/app-protocol.md).
//
//   node --test tests/model.test.mjs   (in web_demo/; no golden files needed)

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { makeFeed, readModelJson } from '../model.js';
import { ContractError } from '../preprocess.js';

const PREPROCESS = {
  img_size: 2, resize_size: 2, interpolation: 'bilinear-antialias', crop: 'center', mean: [0.5, 0.5, 0.5],
  std: [0.25, 0.25, 0.25], scale: 1 / 255, color_order: 'BGR', layout: 'NCHW', resize: 'shorter-side',
};

/** A schema 1 model.json as `sdeploy bundle` wrote it before schema 2: the manifest's tensor specs. */
const SCHEMA1 = {
  schema: 'sdeploy-app-model/1', arch: 'v2_x0_5', artifact: 'onnx', format: 'onnx', model_file: 'model.onnx',
  sha256: 'ab'.repeat(32), precision: 'fp32', num_classes: 3, labels_file: 'labels.txt',
  input: { name: 'input', shape: [1, 3, 2, 2], dtype: 'float32', kind: 'tensor' },
  output: { name: 'logits', shape: [1, 3], dtype: 'float32', kind: 'tensor' },
  preprocess: PREPROCESS, weights: { kind: 'random' },
};

const schema2 = (input, output = { name: 'logits', shape: [1, 3], dtype: 'float32', kind: 'logits' }, extra = {}) => ({
  ...SCHEMA1, schema: 'sdeploy-app-model/2', target: 'onnx', selftest_file: 'selftest.json', input, output, ...extra,
});

// 2x2 pixels, HWC: pixel p has values 10p + channel (+0.5 on the first pixel, to exercise rounding).
const PIXELS = new Float64Array([0.5, 1.5, 2.5, 10, 11, 12, 20, 21, 22, 30, 31, 32]);

test('schema 1: a float NCHW tensor in, logits out', () => {
  const model = readModelJson(SCHEMA1);
  assert.equal(model.schemaVersion, 1);
  assert.deepEqual(model.input, { name: 'input', kind: 'tensor', layout: 'NCHW', type: 'float32', dims: [1, 3, 2, 2] });
  assert.deepEqual(model.output, { name: 'logits', kind: 'logits' });
  assert.equal(model.selftestFile, null);
  assert.equal(model.contract.color_order, 'BGR');
  const feed = makeFeed(PIXELS, model);
  assert.ok(feed.data instanceof Float32Array);
  assert.deepEqual(feed.dims, [1, 3, 2, 2]);
  // BGR first, CHW: channel 0 holds the blue values of the 4 pixels.
  assert.deepEqual(Array.from(feed.data.subarray(0, 4)), [2.5, 12, 22, 32].map((v) => Math.fround((v / 255 - 0.5) / 0.25)));
});

test('schema 2: tensor NHWC, probabilities', () => {
  const model = readModelJson(schema2(
    { name: 'x', shape: ['batch', 2, 2, 3], dtype: 'float32', kind: 'tensor', layout: 'NHWC' },
    { name: 'probs', shape: [1, 3], dtype: 'float32', kind: 'probabilities' },
  ));
  assert.deepEqual(model.input.dims, [1, 2, 2, 3]);
  assert.equal(model.output.kind, 'probabilities');
  assert.equal(model.selftestFile, 'selftest.json');
  const feed = makeFeed(PIXELS, model);
  assert.deepEqual(Array.from(feed.data.subarray(0, 3)), [2.5, 1.5, 0.5].map((v) => Math.fround((v / 255 - 0.5) / 0.25)));
});

test('schema 2: pixels are uint8 RGB, NHWC by default, never normalised or reordered', () => {
  const nhwc = readModelJson(schema2({ name: 'image', shape: [1, 2, 2, 3], dtype: 'uint8', kind: 'pixels' }));
  assert.deepEqual(nhwc.input, { name: 'image', kind: 'pixels', layout: 'NHWC', type: 'uint8', dims: [1, 2, 2, 3] });
  const feed = makeFeed(PIXELS, nhwc);
  assert.ok(feed.data instanceof Uint8Array);
  assert.equal(feed.type, 'uint8');
  assert.deepEqual(Array.from(feed.data), [0, 2, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32]); // RGB although the contract says BGR
  const nchw = readModelJson(schema2({ name: 'image', shape: [1, 3, 2, 2], dtype: 'uint8', kind: 'pixels', layout: 'NCHW' }));
  assert.deepEqual(Array.from(makeFeed(PIXELS, nchw).data), [0, 10, 20, 30, 2, 11, 21, 31, 2, 12, 22, 32]);
});

test('refusals name what is wrong', () => {
  const cases = [
    [{ ...SCHEMA1, schema: 'sdeploy-app-model/3' }, /schema "sdeploy-app-model\/3"/],
    [{ ...SCHEMA1, schema: undefined }, /schema undefined/],
    [{ ...SCHEMA1, format: 'pte' }, /pte model; the web demo runs ONNX/],
    [{ ...SCHEMA1, input: { shape: [1, 3, 2, 2] } }, /no input name/],
    [schema2({ name: 'image', kind: 'image' }), /Core ML image input \(iOS only\)/],
    [schema2({ name: 'x', kind: 'pixels', layout: 'HWC' }), /input.layout "HWC"/],
    [schema2({ name: 'x', kind: 'pixels', dtype: 'float32' }), /pixels input is float32/],
    [schema2({ name: 'x', kind: 'tensor', dtype: 'float16' }), /tensor input is float16/],
    [schema2({ name: 'x', kind: 'tensor', shape: [1, 3, 224, 224] }), /does not match NCHW with preprocess.img_size 2/],
    [schema2({ name: 'x', kind: 'pixels', shape: [1, 3, 2, 2] }), /does not match NHWC/],
    [schema2({ name: 'x' }, { name: 'y', kind: 'embeddings' }), /output.kind "embeddings"/],
    [{ ...SCHEMA1, preprocess: { ...PREPROCESS, interpolation: 'nearest' } }, /preprocess.interpolation/],
  ];
  for (const [json, message] of cases) assert.throws(() => readModelJson(json), (e) => e instanceof ContractError && message.test(e.message), String(message));
});

test('schema 2 defaults: a tensor input without layout is NCHW, an output without kind (or "tensor") is logits', () => {
  const model = readModelJson(schema2({ name: 'x', shape: [1, 3, 2, 2] }, { name: 'y' }));
  assert.equal(model.input.layout, 'NCHW');
  assert.equal(model.input.kind, 'tensor');
  assert.equal(model.output.kind, 'logits');
  assert.equal(readModelJson(schema2({ name: 'x' }, { name: 'y', kind: 'tensor' })).output.kind, 'logits');
});
