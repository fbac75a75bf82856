// Unit tests for ../selftest.js: the self-test comparison against Python's
// (golden.json's "selftest_compare" cases, from shufflenet_deploy/apps/selftest.py),
// the orchestration with a fake engine, and the device report's shape.
//
//   SDEPLOY_GOLDEN_DIR=/tmp/golden node --test tests/selftest.test.mjs   (in web_demo/)

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { REPORT_SCHEMA, compare, deviceName, deviceReport, errorResult, median, readSelftest, runSelftest } from '../selftest.js';

const GOLDEN_DIR = process.env.SDEPLOY_GOLDEN_DIR;
const golden = GOLDEN_DIR ? JSON.parse(readFileSync(join(GOLDEN_DIR, 'golden.json'), 'utf8')) : null;
const NO_GOLDEN = golden ? false : 'SDEPLOY_GOLDEN_DIR is not set (write one with: sdeploy demo golden DIR)';
const METRIC_ATOL = 1e-12;

describe('golden self-test comparison (apps/selftest.compare)', { skip: NO_GOLDEN }, () => {
  for (const tc of golden ? golden.selftest_compare : []) {
    test(tc.name, () => {
      const actual = compare(tc.outputs, tc.expected, tc.tolerance);
      assert.equal(actual.verdict, tc.result.verdict);
      for (const [key, value] of Object.entries(tc.result)) {
        if (key === 'verdict') continue;
        assert.ok(Math.abs(actual[key] - value) <= METRIC_ATOL, `${key}: ${actual[key]} vs Python's ${value}`);
      }
    });
  }
});

test('compare: NaN outputs fail, ties and the decisive rule', () => {
  const tol = { atol: 0.1, min_cosine: 0.9, decisive_margin: 0.5 };
  assert.equal(compare([[1, NaN, 0]], [[1, 0, 0]], tol).verdict, 'FAIL');
  // A near-tie in the reference (gap 0.05 < margin) may flip without failing; a decisive one may not.
  assert.equal(compare([[2.04, 2.06, 0]], [[2.05, 2.0, 0]], tol).verdict, 'PASS');
  const flipped = compare([[1.0, 3.1, 0]], [[3.0, 1.0, 0]], { atol: 10, min_cosine: 0, decisive_margin: 0.5 });
  assert.equal(flipped.verdict, 'FAIL');
  assert.equal(flipped.decisive_top1_agreement, 0);
  assert.equal(compare([[5, 5, 5]], [[5, 5, 5]], tol).max_rel_error, 0); // a zero range counts as 1
  assert.throws(() => compare([[1, 2]], [[1, 2, 3]], tol), RangeError);
});

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

function selftestFile(expected) {
  const png = Buffer.from('not really a png');
  return {
    schema: 'sdeploy-selftest/1', arch: 'v2_x0_5', artifact: 'onnx', format: 'onnx', precision: 'fp32',
    model_file: 'model.onnx', sha256: 'cd'.repeat(32), output_kind: 'logits',
    tolerance: { atol: 0.01, min_cosine: 0.99999, decisive_margin: 0.02 }, runs: { warmup: 2, timed: 5 },
    images: expected.map((row, i) => ({
      name: `image-${i}`, kind: 'synthetic', width: 4, height: 4, png_base64: png.toString('base64'),
      png_sha256: createHash('sha256').update(png).digest('hex'), pixels_sha256: 'ab'.repeat(32), expected: row, expected_top1: row.indexOf(Math.max(...row)),
    })),
  };
}

/** A fake engine that answers `outputs` in order and times 5 runs. */
function fakeEngine(outputs) {
  const calls = { classify: 0, time: null };
  return {
    calls,
    classify: async (png, image) => {
      assert.ok(png instanceof Uint8Array && image.name);
      return { output: Float32Array.from(outputs[calls.classify++]), input: new Float32Array([calls.classify]) };
    },
    time: async (input, warmup, timed) => {
      calls.time = { input: Array.from(input), warmup, timed };
      return [5, 1, 4, 2, 3];
    },
  };
}

test('runSelftest: PASS, FAIL and ERROR, with the first image timed', async () => {
  const expected = [[0.5, 2.0, -1.0], [3.0, 0.25, 1.0]];
  const selftest = readSelftest(selftestFile(expected), { sha256: 'cd'.repeat(32), output: { kind: 'logits' } });
  const engine = fakeEngine(expected);
  const pass = await runSelftest(selftest, engine);
  assert.equal(pass.verdict, 'PASS', pass.error);
  assert.equal(pass.median_ms, 3);
  assert.deepEqual(engine.calls.time, { input: [1], warmup: 2, timed: 5 });
  assert.deepEqual(pass.images.map((i) => i.output), expected);

  const tampered = await runSelftest(selftest, fakeEngine([[0.5, 2.0, -1.0], [3.0, 0.25, 1.02]]));
  assert.equal(tampered.verdict, 'FAIL');
  assert.ok(Math.abs(tampered.max_abs_error - 0.02) < 1e-6);

  const broken = await runSelftest(selftest, { classify: async () => { throw new Error('engine exploded'); }, time: async () => [] });
  assert.equal(broken.verdict, 'ERROR');
  assert.equal(broken.error, 'engine exploded');

  const wrongPng = structuredClone(selftest);
  wrongPng.images[1].png_sha256 = '00'.repeat(32);
  const mismatch = await runSelftest(wrongPng, fakeEngine(expected));
  assert.equal(mismatch.verdict, 'ERROR');
  assert.match(mismatch.error, /image-1 does not match its png_sha256/);
  assert.equal(mismatch.images.length, 1);
});

test('readSelftest refuses a self-test for another model or output kind', () => {
  const file = selftestFile([[1, 2]]);
  assert.throws(() => readSelftest(file, { sha256: 'ef'.repeat(32) }), /made for another model/);
  assert.throws(() => readSelftest({ ...file, schema: 'x' }, {}), /schema "x"/);
  assert.throws(() => readSelftest({ ...file, tolerance: { atol: 1 } }, {}), /tolerance/);
  assert.throws(() => readSelftest(file, { output: { kind: 'probabilities' } }), /expects logits/);
});

test('deviceReport has every field of sdeploy-device-report/1', async () => {
  const selftest = selftestFile([[1, 2]]);
  const result = await runSelftest(selftest, fakeEngine([[1, 2]]));
  const report = deviceReport(selftest, result, {
    modelSha256: 'cd'.repeat(32), runtime: 'onnxruntime-web 1.30.0', accelerator: 'wasm, 4 threads',
    device: 'Chrome 156 / Android 16 / Pixel 8', created: new Date(Date.UTC(2026, 11, 1, 12, 0, 0, 456)),
  });
  assert.deepEqual(Object.keys(report), [
    'schema', 'created', 'app', 'artifact', 'sha256', 'model_sha256', 'runtime', 'accelerator', 'device', 'verdict',
    'max_abs_error', 'max_rel_error', 'min_cosine', 'top1_agreement', 'decisive_top1_agreement', 'median_ms', 'error', 'images',
  ]);
  assert.equal(report.schema, REPORT_SCHEMA);
  assert.equal(report.created, '2026-12-01T12:00:00Z');
  assert.equal(report.sha256, selftest.sha256);
  assert.deepEqual(Object.keys(report.images[0]), ['name', 'png_sha256', 'pixels_sha256', 'expected', 'output']);
  assert.equal(report.images[0].pixels_sha256, 'ab'.repeat(32));
  const failed = deviceReport(null, errorResult('no selftest.json'), { runtime: 'r', accelerator: 'a', device: 'd' });
  assert.equal(failed.verdict, 'ERROR');
  assert.equal(failed.max_abs_error, null); // JSON null, not a missing key
  assert.ok('median_ms' in JSON.parse(JSON.stringify(failed)));
});

test('deviceName', () => {
  assert.equal(deviceName('Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36', 'Pixel 8'),
    'Chrome 156 / Android 14 / Pixel 8');
  assert.equal(deviceName('Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1'),
    'Safari 17.4 / iOS 17.4');
  assert.equal(deviceName('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36'),
    'Chrome 156 / Linux');
  assert.equal(deviceName('Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0'), 'Firefox 140 / Linux');
});
