"""Loading a saved ML Program and running its ``main`` function op by op."""

from __future__ import annotations

import inspect
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ....errors import MissingDependencyError, SdeployError
from .ops import CONSTEXPR_OPS, RUNTIME_OPS
from .values import ValueReader, coerce

#: Op parameters that are tuples of tensors (variadic), even when only one is bound.
TUPLE_PARAMS = {"values"}
#: Spec colour spaces -> ``ImageInput.color_layout``.
COLOR_LAYOUTS = {"RGB": "RGB", "BGR": "BGR", "GRAYSCALE": "GRAYSCALE", "GRAYSCALE_FLOAT16": "GRAYSCALE"}


class UnsupportedOpError(SdeployError):
    """The program contains an op (or an op parameter) the NumPy interpreter does not implement."""

    def __init__(self, op_types: Iterable[str], detail: str = ""):
        self.op_types = sorted(set(op_types))
        names = ", ".join(f"'{t}'" for t in self.op_types)
        noun, verb = ("op", "is") if len(self.op_types) == 1 else ("ops", "are")
        super().__init__(f"Core ML {noun} {names} {verb} not supported by the NumPy interpreter{detail}")


@dataclass(frozen=True)
class ImageInput:
    """An ImageType input, for callers that need to prepare pixels.

    ``scale`` and ``bias`` (``bias`` in the model's channel order) describe the
    preprocessing coremltools compiled into the program as its first ops; running
    the program applies them, so callers pass raw 0..255 pixels in ``color_layout``
    channel order.
    """

    name: str
    shape: tuple[int, ...]
    color_layout: str
    scale: float
    bias: tuple[float, ...]


@dataclass(frozen=True)
class _Ref:
    """An op parameter bound to a variable (as opposed to an inline literal)."""

    name: str


@dataclass(frozen=True)
class _Step:
    op_type: str
    kernel: Callable
    params: dict
    outputs: tuple[tuple[str, str | None], ...]  # (variable name, declared MIL type name)


@dataclass(frozen=True)
class _Input:
    name: str
    shape: tuple[int | None, ...]  # None: a flexible dimension
    type_name: str


class MilProgram:
    """A saved Core ML ML Program (``.mlpackage``), executed with NumPy.

    Every op output is rounded to its declared type, so an fp16 program
    (``compute_precision=FLOAT16``) is simulated as Core ML stores it, while an
    fp32 program stays float32 throughout.  Use :meth:`load`.
    """

    def __init__(self, path: Path, spec, model_dir: Path):
        if spec.WhichOneof("Type") != "mlProgram":
            raise SdeployError(f"{path} is a Core ML '{spec.WhichOneof('Type')}' model, not an ML Program")
        if "main" not in spec.mlProgram.functions:
            raise SdeployError(f"{path}: the ML Program has no 'main' function")
        function = spec.mlProgram.functions["main"]
        block = function.block_specializations[function.opset]
        _check_supported(block.operations)
        type_name = _proto().MIL_pb2.DataType.Name
        self.path = path
        self.spec = spec
        self._op_types = Counter(op.type for op in block.operations)
        self._consts, self._steps = _compile(block.operations, ValueReader(model_dir, type_name), type_name)
        self._inputs = {named.name: _function_input(named, type_name) for named in function.inputs}
        self._block_outputs = list(block.outputs)
        self._output_types = {o.name: o.type.WhichOneof("Type") for o in spec.description.output}
        self.input_names = list(self._inputs)
        self.output_names = list(self._output_types)
        missing = [name for name in self.output_names if name not in self._block_outputs]
        if missing:
            raise SdeployError(f"{path}: described outputs {missing} are not produced by the ML Program")
        self.image_input = _image_input(spec, self._inputs, self._steps, self._consts)
        classify = next((s for s in self._steps if s.op_type == "classify"), None)
        self.is_classifier = classify is not None
        self.class_labels = None if classify is None else [str(c) for c in classify.params["classes"]]

    @classmethod
    def load(cls, path: str | Path) -> MilProgram:
        """Read the spec and weights; fail here, not mid-run, on any op the interpreter lacks."""
        path = Path(path)
        spec, model_dir = _read_spec(path)
        return cls(path, spec, model_dir)

    def op_types(self) -> Counter:
        """How many ops of each type ``main`` has (constants included)."""
        return Counter(self._op_types)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, object]:
        """Outputs by name: float32 arrays, and per-item lists for a classifier's label and probabilities.

        A batch larger than the model's fixed batch runs item by item (chunk by
        chunk) and is stacked; a flexible batch dimension runs in one go.
        """
        arrays = self._check_feeds(feeds)
        chunk = self._chunk_size(arrays)
        if chunk is None:
            results = [self._execute(arrays)]
        else:
            total = next(iter(arrays.values())).shape[0]
            results = [self._execute({n: a[i : i + chunk] for n, a in arrays.items()}) for i in range(0, total, chunk)]
        return {name: self._output(name, [r[name] for r in results]) for name in self.output_names}

    def _execute(self, feeds: dict) -> dict:
        env = {**self._consts, **feeds}
        for step in self._steps:
            result = step.kernel(**{key: _resolve(value, env) for key, value in step.params.items()})
            values = result if isinstance(result, tuple) else (result,)
            if len(values) != len(step.outputs):
                raise SdeployError(
                    f"Core ML op '{step.op_type}' gave {len(values)} outputs, expected {len(step.outputs)}"
                )
            for (name, type_name), value in zip(step.outputs, values):
                env[name] = coerce(value, type_name)
        return {name: env[name] for name in self._block_outputs}

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [name for name in self.input_names if name not in feeds]
        unknown = [name for name in feeds if name not in self._inputs]
        if missing or unknown:
            raise SdeployError(f"Core ML inputs are {self.input_names}; missing {missing}, unknown {unknown}")
        arrays = {}
        for name, spec in self._inputs.items():
            array = coerce(np.asarray(feeds[name]), spec.type_name)
            # The batch dimension is checked by _chunk_size: a larger batch may be split.
            if array.ndim != len(spec.shape) or not _fits(array.shape[1:], spec.shape[1:]):
                raise SdeployError(f"Core ML input '{name}' takes shape {_show(spec.shape)}, got {array.shape}")
            arrays[name] = array
        return arrays

    def _chunk_size(self, arrays: dict[str, np.ndarray]) -> int | None:
        """Items per run when the batch exceeds the model's fixed batch; None when the feeds fit as they are."""
        misfits = [name for name, array in arrays.items() if not _fits(array.shape, self._inputs[name].shape)]
        if not misfits:
            return None
        fixed = {self._inputs[name].shape[0] for name in misfits}
        totals = {array.shape[0] for array in arrays.values()}
        if len(fixed) != 1 or len(totals) != 1:
            raise SdeployError("Core ML inputs disagree on the batch size")
        fixed, total = fixed.pop(), totals.pop()
        if not fixed or total % fixed:
            raise SdeployError(f"a batch of {total} does not split into this Core ML model's fixed batch of {fixed}")
        return fixed

    def _output(self, name: str, chunks: list):
        if self._output_types[name] in ("dictionaryType", "stringType", "int64Type"):
            return [item for chunk in chunks for item in chunk]
        arrays = [np.asarray(c) for c in chunks]
        arrays = [a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a for a in arrays]
        if len(arrays) == 1:
            return arrays[0]
        if all(a.ndim > 0 and a.shape[0] == arrays[0].shape[0] for a in arrays):
            return np.concatenate(arrays, axis=0)
        return np.stack(arrays)


def _proto():
    try:
        from coremltools import proto
    except ImportError:
        raise MissingDependencyError("coremltools", purpose="reading Core ML packages") from None
    return proto


def _read_spec(path: Path):
    """The protobuf spec and the directory ``@model_path`` refers to."""
    if path.is_dir():
        try:
            manifest = json.loads((path / "Manifest.json").read_text())
            entry = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        except (OSError, ValueError, KeyError) as exc:
            raise SdeployError(f"{path} is not a readable .mlpackage ({exc})") from None
        spec_path = path / "Data" / entry["path"]
    elif path.is_file():
        spec_path = path
    else:
        raise SdeployError(f"Core ML model not found: {path}")
    from google.protobuf.message import DecodeError

    spec = _proto().Model_pb2.Model()
    try:
        spec.ParseFromString(spec_path.read_bytes())
    except (OSError, DecodeError) as exc:
        raise SdeployError(f"cannot read the Core ML spec {spec_path}: {exc}") from None
    return spec, spec_path.parent


def _check_supported(operations) -> None:
    known = {"const", *RUNTIME_OPS, *CONSTEXPR_OPS}
    unsupported = {op.type for op in operations if op.type not in known}
    if unsupported:
        raise UnsupportedOpError(unsupported)


def _compile(operations, reader: ValueReader, type_name) -> tuple[dict, list[_Step]]:
    """Constants (and decompressed constexpr weights) by name, and the steps to run per input."""
    consts, steps = {}, []
    for op in operations:
        outputs = tuple((o.name, _declared_type(o.type, type_name)) for o in op.outputs)
        if op.type == "const":
            consts[outputs[0][0]] = coerce(reader.read(op.attributes["val"]), outputs[0][1])
            continue
        kernel = CONSTEXPR_OPS.get(op.type) or RUNTIME_OPS[op.type]
        params = _params(op, reader)
        try:
            inspect.signature(kernel).bind(**params)
        except TypeError as exc:
            raise UnsupportedOpError([op.type], f" with these parameters ({exc})") from None
        if op.type in CONSTEXPR_OPS:
            value = kernel(**{key: _resolve(v, consts) for key, v in params.items()})
            consts[outputs[0][0]] = coerce(value, outputs[0][1])
        else:
            steps.append(_Step(op.type, kernel, params, outputs))
    return consts, steps


def _params(op, reader: ValueReader) -> dict:
    # iOS16 constexpr ops carry their operands as attributes, later ops as inputs.
    params = {key: reader.read(value) for key, value in op.attributes.items() if key != "name"}
    for key, argument in op.inputs.items():
        bound = [
            _Ref(b.name) if b.WhichOneof("binding") == "name" else reader.read(b.value) for b in argument.arguments
        ]
        params[key] = bound if key in TUPLE_PARAMS or len(bound) > 1 else bound[0]
    return params


def _resolve(value, env: dict):
    if isinstance(value, _Ref):
        return env[value.name]
    if isinstance(value, list):
        return [_resolve(v, env) for v in value]
    return value


def _constant(value, consts: dict):
    """A parameter's value if it is known before running (a literal or a constant), else None."""
    return consts.get(value.name) if isinstance(value, _Ref) else value


def _declared_type(value_type, type_name) -> str | None:
    return type_name(value_type.tensorType.dataType) if value_type.WhichOneof("type") == "tensorType" else None


def _function_input(named, type_name) -> _Input:
    tensor = named.type.tensorType
    shape = tuple(d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in tensor.dimensions)
    return _Input(named.name, shape, type_name(tensor.dataType))


def _image_input(spec, inputs: dict[str, _Input], steps: list[_Step], consts: dict) -> ImageInput | None:
    feature = next((f for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"), None)
    if feature is None:
        return None
    space = feature.type.imageType.ColorSpace.Name(feature.type.imageType.colorSpace)
    layout = COLOR_LAYOUTS.get(space, space)
    channels = 1 if layout == "GRAYSCALE" else 3
    scale, bias = _compiled_preprocessing(feature.name, steps, consts)
    bias = (0.0,) * channels if bias is None else tuple(float(b) for b in np.broadcast_to(bias.ravel(), (channels,)))
    return ImageInput(feature.name, tuple(inputs[feature.name].shape), layout, scale, bias)


def _compiled_preprocessing(name: str, steps: list[_Step], consts: dict) -> tuple[float, np.ndarray | None]:
    """Scale and bias from the ``<input>__scaled__`` mul and ``<input>__biased__`` add coremltools inserts.

    ML Programs have no spec-level image preprocessing: coremltools'
    ``insert_image_preprocessing_ops`` pass emits ``mul(image, scale)`` then
    ``add(., bias)`` (bias reshaped to the model's channel order) as the first ops.
    """
    scale, bias, current = 1.0, None, name
    for step in steps:
        output = step.outputs[0][0]
        if step.params.get("x") != _Ref(current) or step.op_type not in ("mul", "add"):
            continue
        y = _constant(step.params.get("y"), consts)
        if y is None:
            continue
        if step.op_type == "mul" and output.endswith("__scaled__"):
            scale, current = float(np.ravel(y)[0]), output
        elif step.op_type == "add" and output.endswith("__biased__"):
            bias, current = np.asarray(y, np.float64), output
    return scale, bias


def _fits(shape: tuple[int, ...], declared: tuple[int | None, ...]) -> bool:
    return all(d is None or d == s for s, d in zip(shape, declared))


def _show(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"
