// model/model.json, as `sdeploy bundle` writes it (docs/app-protocol.md): which
// engine, what to feed the network and how to read its output.  Pure functions,
// no DOM, so node tests cover schema 1 and 2 alike.
//
//   input.kind   "tensor": float32, normalised by `preprocess` (normalize)
//                "pixels": uint8 RGB, resized and cropped, rounded to 8 bits,
//                          NOT normalised: the model scales itself (toPixels8)
//   input.layout "NCHW" | "NHWC"; missing means NCHW for tensors (schema 1),
//                NHWC for pixels
//   output.kind  "logits" (the page applies softmax) | "probabilities" (it does not)
//
// Schema 1 files carry the manifest's tensor specs, whose "kind" is always
// "tensor": their input is a float NCHW tensor and their output logits.  An
// output kind "tensor" in a schema 2 file (an export older than output kinds)
// is read as logits too.

import { ContractError, checkContract, normalize, toPixels8 } from './preprocess.js';

export const SCHEMA_PREFIX = 'sdeploy-app-model/';
const KNOWN_SCHEMAS = [1, 2];

/** Validate a parsed model.json and return what the engine needs; throws ContractError with a message for the user. */
export function readModelJson(json) {
  if (!json || typeof json !== 'object') throw new ContractError('model/model.json is not a JSON object');
  const version = typeof json.schema === 'string' && json.schema.startsWith(SCHEMA_PREFIX) ? Number(json.schema.slice(SCHEMA_PREFIX.length)) : NaN;
  if (!KNOWN_SCHEMAS.includes(version)) {
    throw new ContractError(`model/model.json has schema ${JSON.stringify(json.schema)}; this page reads ${KNOWN_SCHEMAS.map((v) => SCHEMA_PREFIX + v).join(' and ')}`);
  }
  if (json.format !== 'onnx') {
    throw new ContractError(`model/model.json describes a ${json.format} model; the web demo runs ONNX (bundle with --app web)`);
  }
  for (const key of ['input', 'output']) {
    if (!json[key] || typeof json[key].name !== 'string') throw new ContractError(`model/model.json has no ${key} name`);
  }
  const contract = checkContract(json.preprocess);
  const input = readInput(json.input, contract, version);
  // "tensor" is the manifest's generic kind (all of schema 1, and exports made before output kinds): logits.
  const outputKind = version === 1 || !json.output.kind || json.output.kind === 'tensor' ? 'logits' : json.output.kind;
  const output = { name: json.output.name, kind: outputKind };
  if (!['logits', 'probabilities'].includes(output.kind)) {
    throw new ContractError(`unsupported output.kind "${output.kind}" (this demo reads logits and probabilities)`);
  }
  return {
    schemaVersion: version,
    arch: json.arch,
    artifact: json.artifact,
    precision: json.precision,
    weightsKind: json.weights && json.weights.kind ? json.weights.kind : null,
    modelFile: json.model_file || 'model.onnx',
    labelsFile: json.labels_file || 'labels.txt',
    selftestFile: typeof json.selftest_file === 'string' ? json.selftest_file : null,
    sha256: typeof json.sha256 === 'string' ? json.sha256 : null,
    numClasses: Number.isInteger(json.num_classes) ? json.num_classes : null,
    contract,
    input,
    output,
  };
}

function readInput(spec, contract, version) {
  const kind = version === 1 ? 'tensor' : spec.kind || 'tensor';
  if (kind === 'image') throw new ContractError('input.kind "image" is a Core ML image input (iOS only); bundle with --app web');
  if (!['tensor', 'pixels'].includes(kind)) throw new ContractError(`unsupported input.kind "${kind}" (this demo feeds tensor and pixels)`);
  const layout = spec.layout || (kind === 'pixels' ? 'NHWC' : 'NCHW');
  if (!['NCHW', 'NHWC'].includes(layout)) throw new ContractError(`unsupported input.layout "${layout}" (NCHW or NHWC)`);
  const type = kind === 'pixels' ? 'uint8' : 'float32';
  if (spec.dtype && spec.dtype !== type) {
    throw new ContractError(`the model's ${kind} input is ${spec.dtype}; the web demo feeds ${type} for input.kind "${kind}"`);
  }
  const s = contract.img_size;
  const dims = layout === 'NCHW' ? [1, 3, s, s] : [1, s, s, 3];
  // The batch dimension may be a name ("batch") in dynamic-batch exports: the page feeds 1.
  if (Array.isArray(spec.shape)) {
    const ok = spec.shape.length === 4 && spec.shape.every((d, i) => i === 0 || !Number.isInteger(d) || d === dims[i]);
    if (!ok) throw new ContractError(`model input shape [${spec.shape}] does not match ${layout} with preprocess.img_size ${s}`);
  }
  return { name: spec.name, kind, layout, type, dims };
}

/** Resized and cropped HWC pixels (float64, 0..255) -> {type, data, dims}: the network's input as model.json says. */
export function makeFeed(pixels, model) {
  const { kind, layout, type, dims } = model.input;
  const data = kind === 'pixels' ? toPixels8(pixels, layout) : normalize(pixels, model.contract, layout);
  return { type, data, dims };
}
