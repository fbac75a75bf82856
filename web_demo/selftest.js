// The Self-test action (docs/app-protocol.md): run selftest.json's images through
// the page's own decoding, preprocessing and engine, compare with Python's
// outputs, and build the device report `sdeploy verify --device-report` reads.
//
// No DOM and no engine here: runSelftest takes the engine as callbacks, so node
// tests run the comparison against shufflenet_deploy/apps/selftest.py's golden
// cases and the orchestration against a fake engine.

export const SELFTEST_SCHEMA = 'sdeploy-selftest/1';
export const REPORT_SCHEMA = 'sdeploy-device-report/1';

/** numpy's argmax: the first maximum, or the first NaN if there is one. */
function argmax(row) {
  let best = 0;
  for (let k = 0; k < row.length; k++) {
    if (Number.isNaN(row[k])) return k;
    if (row[k] > row[best]) best = k;
  }
  return best;
}

/** Gap between the largest and second-largest value (NaN when a NaN is present, as numpy's sort puts it last). */
function top2Gap(row) {
  if (row.length < 2) return Infinity;
  let first = -Infinity;
  let second = -Infinity;
  for (const v of row) {
    if (Number.isNaN(v)) return NaN;
    if (v > first) {
      second = first;
      first = v;
    } else if (v > second) {
      second = v;
    }
  }
  return first - second;
}

/** NaN-propagating max / min, as numpy's. */
const maxOf = (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));
const minOf = (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b));

/**
 * The comparison every app implements, in float64 (Python: apps/selftest.compare).
 * outputs, expected: one row per image, one value per class.  Returns the
 * verdict (PASS / FAIL) and the metrics under the report's key names.
 */
export function compare(outputs, expected, tolerance) {
  if (!Array.isArray(expected) || !expected.length || outputs.length !== expected.length
      || expected.some((row, i) => !row.length || row.length !== outputs[i].length)) {
    throw new RangeError(`outputs and expected must be equal (images x classes) arrays, got ${outputs.length} and ${expected.length} rows`);
  }
  let maxAbs = 0;
  let high = -Infinity;
  let low = Infinity;
  let cosine = Infinity;
  let agree = 0;
  let decisive = 0;
  let decisiveAgree = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = outputs[i];
    const e = expected[i];
    let dot = 0;
    let aa = 0;
    let ee = 0;
    for (let k = 0; k < e.length; k++) {
      maxAbs = maxOf(maxAbs, Math.abs(a[k] - e[k]));
      high = maxOf(high, e[k]);
      low = minOf(low, e[k]);
      dot += a[k] * e[k];
      aa += a[k] * a[k];
      ee += e[k] * e[k];
    }
    cosine = minOf(cosine, dot / (Math.sqrt(aa) * Math.sqrt(ee) + 1e-30));
    const same = argmax(a) === argmax(e);
    agree += same;
    if (top2Gap(e) > tolerance.decisive_margin) {
      decisive++;
      decisiveAgree += same;
    }
  }
  const spread = high - low === 0 ? 1.0 : high - low; // Python: `float(...) or 1.0` (a NaN stays NaN)
  const decisiveAgreement = decisive ? decisiveAgree / decisive : 1.0;
  const passed = maxAbs <= tolerance.atol && cosine >= tolerance.min_cosine && decisiveAgreement === 1.0;
  return {
    verdict: passed ? 'PASS' : 'FAIL',
    max_abs_error: maxAbs,
    max_rel_error: maxAbs / spread,
    min_cosine: cosine,
    top1_agreement: agree / expected.length,
    decisive_top1_agreement: decisiveAgreement,
  };
}

/** The median (the mean of the middle two for an even count), as Python's statistics.median. */
export function median(values) {
  if (!values.length) return NaN;
  const sorted = Array.from(values).sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Check a parsed selftest.json against the loaded model; returns it, or throws with a message for the user. */
export function readSelftest(json, model) {
  if (!json || json.schema !== SELFTEST_SCHEMA) {
    throw new Error(`the self-test file has schema ${JSON.stringify(json && json.schema)}, expected ${SELFTEST_SCHEMA}`);
  }
  if (model.sha256 && json.sha256 !== model.sha256) {
    throw new Error(`the self-test was made for another model (sha256 ${String(json.sha256).slice(0, 12)}…, the bundled model is ${model.sha256.slice(0, 12)}…): bundle again`);
  }
  const tol = json.tolerance || {};
  if (!['atol', 'min_cosine', 'decisive_margin'].every((key) => Number.isFinite(tol[key]))) {
    throw new Error('the self-test file has no complete tolerance (atol, min_cosine, decisive_margin)');
  }
  if (!Array.isArray(json.images) || !json.images.length) throw new Error('the self-test file has no images');
  for (const image of json.images) {
    if (typeof image.png_base64 !== 'string' || !Array.isArray(image.expected)) {
      throw new Error(`self-test image ${image.name} has no png_base64 or expected values`);
    }
  }
  if (json.output_kind && model.output && json.output_kind !== model.output.kind) {
    throw new Error(`the self-test expects ${json.output_kind} but model.json says the model outputs ${model.output.kind}`);
  }
  return json;
}

export function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export async function sha256Hex(bytes) {
  if (!globalThis.crypto || !crypto.subtle) return null; // only in secure contexts (https, localhost)
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Run every self-test image through the engine and compare.
 *   engine.classify(pngBytes, image) -> {output, input}: the page's own path for a user's photo
 *   engine.time(input, warmup, timed) -> [ms, ...]: engine-only wall times on one input
 * Returns the report's result fields: verdict, metrics, median_ms, error, images.
 * Never throws: a failure is an ERROR verdict with the message (and the images done so far).
 */
export async function runSelftest(selftest, engine, onProgress = () => {}) {
  const images = [];
  try {
    let firstInput = null;
    for (const [n, image] of selftest.images.entries()) {
      onProgress(`image ${n + 1} of ${selftest.images.length}: ${image.name}`);
      const png = base64Bytes(image.png_base64);
      const digest = image.png_sha256 ? await sha256Hex(png) : null;
      if (digest && digest !== image.png_sha256) throw new Error(`self-test image ${image.name} does not match its png_sha256`);
      const { output, input } = await engine.classify(png, image);
      if (firstInput === null) firstInput = input;
      images.push({
        name: image.name, png_sha256: image.png_sha256 || null, pixels_sha256: image.pixels_sha256 || null, // copied unchanged, for verify
        expected: image.expected, output: Array.from(output),
      });
    }
    const metrics = compare(images.map((i) => i.output), images.map((i) => i.expected), selftest.tolerance);
    const runs = selftest.runs || {};
    onProgress('timing');
    const times = await engine.time(firstInput, runs.warmup ?? 3, runs.timed ?? 10);
    return { ...metrics, median_ms: median(times), error: null, images };
  } catch (error) {
    return errorResult(String(error && error.message ? error.message : error), images);
  }
}

/** The device report (sdeploy-device-report/1). `result` is runSelftest's; the rest describes the device and engine. */
export function deviceReport(selftest, result, { modelSha256, runtime, accelerator, device, created = new Date() }) {
  return {
    schema: REPORT_SCHEMA,
    created: created.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    app: 'web',
    artifact: selftest ? selftest.artifact : null,
    sha256: selftest ? selftest.sha256 : null,
    model_sha256: modelSha256 || null,
    runtime,
    accelerator,
    device,
    verdict: result.verdict,
    max_abs_error: result.max_abs_error,
    max_rel_error: result.max_rel_error,
    min_cosine: result.min_cosine,
    top1_agreement: result.top1_agreement,
    decisive_top1_agreement: result.decisive_top1_agreement,
    median_ms: result.median_ms,
    error: result.error,
    images: result.images,
  };
}

/**
 * "Browser N / OS V / model" from a user-agent string (and, in Chromium, the
 * model from navigator.userAgentData's high-entropy values), for the report's `device`.
 */
export function deviceName(userAgent, model = '') {
  const ua = String(userAgent || '');
  const pick = (re) => {
    const m = re.exec(ua);
    return m ? m[1] : null;
  };
  let browser = 'unknown browser';
  for (const [name, re] of [['Edge', /Edg(?:A|iOS)?\/(\d+)/], ['Firefox', /(?:Firefox|FxiOS)\/(\d+)/], ['Chrome', /(?:Chrome|CriOS)\/(\d+)/], ['Safari', /Version\/(\d+(?:\.\d+)?).*Safari/]]) {
    const version = pick(re);
    if (version) {
      browser = `${name} ${version}`;
      break;
    }
  }
  let os = 'unknown OS';
  const ios = pick(/(?:iPhone|iPad|iPod).*? OS (\d+(?:_\d+)?)/);
  const android = pick(/Android (\d+(?:\.\d+)?)/);
  if (ios) os = `iOS ${ios.replace('_', '.')}`;
  else if (android) os = `Android ${android}`;
  else if (/Mac OS X/.test(ua)) os = 'macOS';
  else if (/Windows/.test(ua)) os = 'Windows';
  else if (/CrOS/.test(ua)) os = 'ChromeOS';
  else if (/Linux/.test(ua)) os = 'Linux';
  return [browser, os, model].filter(Boolean).join(' / ');
}

/** runSelftest's result for a failure before or outside the comparison: the ERROR verdict. */
export function errorResult(message, images = []) {
  return {
    verdict: 'ERROR', max_abs_error: null, max_rel_error: null, min_cosine: null, top1_agreement: null,
    decisive_top1_agreement: null, median_ms: null, error: message, images,
  };
}
