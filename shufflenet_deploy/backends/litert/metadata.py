"""TFLite Model Metadata: what Android's LiteRT support and metadata libraries read from a ``.tflite``.

The schema is ``metadata_schema.fbs`` of tensorflow/tflite-support (every
field written here exists since metadata version 1.0.0).  tflite-support's
own writer pulls in TensorFlow-era packages, so the flatbuffer is written
here with the plain ``flatbuffers`` package (a dependency of ai-edge-litert),
and stored the way tflite-support's ``MetadataPopulator`` stores it: as a
model buffer named ``TFLITE_METADATA`` listed in ``Model.metadata``, with the
associated files in a zip appended to the model.  Interpreters ignore both.

What is written: name, description, version, author and license; the input's
normalisation in the schema's 0-255 form, and for NHWC input its image
properties (colour space, size); the labels as the output's
TENSOR_AXIS_LABELS file ``labels.txt``; and sdeploy's own metadata (the JSON
every backend embeds) as the model's associated file ``metadata.json``.  It
is an associated file rather than the description field because it holds the
whole label list (tens of KB for ImageNet), which metadata viewers would
show as the model's description; as a file, apps read it with
``MetadataExtractor.getAssociatedFile("metadata.json")`` or any zip reader.

:func:`read_metadata` is a separate reader (raw flatbuffer walking with
``struct``, no code shared with the writer) so tests check the bytes against
the schema rather than the writer against itself.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from ...labels import labels_text
from ...modelio import NHWC, PIXELS

#: The ``Model.metadata`` entry that holds the metadata buffer (tflite-support's MetadataPopulator).
METADATA_BUFFER_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"  # metadata_schema.fbs file_identifier
MODEL_IDENTIFIER = b"TFL3"  # schema.fbs file_identifier
#: Oldest metadata parser that reads every field written here (tflite-support metadata_version.cc).
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
#: sdeploy's own metadata; the same name TorchScript artifacts use for theirs.
SDEPLOY_FILE = "metadata.json"

# Enum values and union tags of metadata_schema.fbs.
FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS"}
FILE_DESCRIPTIONS, FILE_AXIS_LABELS = 1, 2
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
CONTENT_FEATURE, CONTENT_IMAGE = 1, 2
UNIT_NORMALIZATION = 1


@dataclass(frozen=True)
class ClassifierMetadata:
    """What the metadata says about one exported classifier."""

    name: str
    description: str
    version: str
    author: str
    license: str
    labels: tuple[str, ...]
    layout: str  # NCHW or NHWC
    img_size: int
    #: Per channel, in the tensor's channel order, applied to 0-255 values: (value - mean) / std.
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color_space: str  # RGB, or UNKNOWN for a BGR tensor (the schema has no BGR)
    input_description: str
    output_description: str
    sdeploy_json: str

    @classmethod
    def from_context(cls, ctx) -> ClassifierMetadata:
        contract, io = ctx.contract, ctx.io
        meta = ctx.metadata
        if io.kind == PIXELS:
            # The model normalises inside: apps feed the 8-bit pixels unchanged.
            mean, std, color = (0.0,) * 3, (1.0,) * 3, "RGB"
            what = "8-bit RGB pixels (resized and centre-cropped); scaling and mean/std are inside the model"
        else:
            # The contract's (pixel * scale - mean) / std is (pixel - mean / scale) / (std / scale).
            mean = tuple(m / contract.scale for m in contract.mean)
            std = tuple(s / contract.scale for s in contract.std)
            color = "RGB" if contract.color_order == "RGB" else "UNKNOWN"
            what = f"{contract.color_order} image, normalised per channel: (pixel - mean) / std"
        output = "probabilities (softmax in the model)" if io.probabilities else "logits (softmax gives probabilities)"
        return cls(
            name=meta.get("arch", ctx.arch),
            description=meta.get("description", ""),
            # The weights identify the model; the exporter's version is in metadata.json.
            version=meta.get("weights_sha256", "")[:12],
            author=meta.get("author", ""),
            license=meta.get("license", ""),
            labels=tuple(ctx.labels),
            layout=io.layout,
            img_size=ctx.img_size,
            mean=mean,
            std=std,
            color_space=color,
            input_description=f"{io.layout} {what}",
            output_description=f"Class {output}, in the order of {LABELS_FILE}",
            sdeploy_json=ctx.metadata_json(),
        )

    def files(self) -> dict[str, bytes]:
        """The associated files, by name, as they go into the appended zip."""
        labels = labels_text(self.labels).encode("utf-8")
        return {LABELS_FILE: labels, SDEPLOY_FILE: self.sdeploy_json.encode("utf-8")}

    def summary(self) -> dict:
        """What the manifest records about the metadata."""
        return {
            "schema": f"TFLite metadata (min_parser_version {MIN_PARSER_VERSION})",
            "labels_file": LABELS_FILE,
            "sdeploy_file": SDEPLOY_FILE,
            "input_layout": self.layout,
            "input_content": f"image ({self.color_space})" if self.layout == NHWC else "feature tensor",
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
        }


# ---------------------------------------------------------------- writer


class _Writer:
    """A ``flatbuffers.Builder`` for this schema's few shapes. Flatbuffers builds children before parents,
    so every string, vector and sub-table is made first and a table gets their offsets."""

    def __init__(self):
        import flatbuffers

        self.builder = flatbuffers.Builder(1024)

    def string(self, text: str) -> int:
        return self.builder.CreateString(text)

    def floats(self, values) -> int:
        return self.builder.CreateNumpyVector(np.asarray(values, dtype="<f4"))

    def vector(self, offsets: list[int]) -> int:
        self.builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            self.builder.PrependUOffsetTRelative(offset)
        return self.builder.EndVector()

    def table(self, offsets: dict[int, int], bytes_: dict[int, int] | None = None, uints: dict | None = None) -> int:
        """A table from field slots (declaration order; a union takes two: its type byte, then its value)."""
        b = self.builder
        slots = max([-1, *offsets, *(bytes_ or {}), *(uints or {})]) + 1
        b.StartObject(slots)
        for slot, value in offsets.items():
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        for slot, value in (bytes_ or {}).items():
            b.PrependUint8Slot(slot, value, 0)
        for slot, value in (uints or {}).items():
            b.PrependUint32Slot(slot, value, 0)
        return b.EndObject()

    def associated_file(self, name: str, description: str, kind: int) -> int:
        # AssociatedFile {name, description, type}
        return self.table({0: self.string(name), 1: self.string(description)}, bytes_={2: kind})

    def finish(self, root: int) -> bytes:
        self.builder.Finish(root, file_identifier=METADATA_IDENTIFIER)
        return bytes(self.builder.Output())


def build_metadata(meta: ClassifierMetadata) -> bytes:
    """The ModelMetadata flatbuffer (file identifier ``M001``) for one classifier."""
    w = _Writer()
    inputs = w.vector([_input_tensor(w, meta)])
    outputs = w.vector([_output_tensor(w, meta)])
    # SubGraphMetadata {name, description, input_tensor_metadata, output_tensor_metadata}
    subgraph = w.table({0: w.string(meta.name), 1: w.string(meta.description), 2: inputs, 3: outputs})
    sdeploy = w.associated_file(SDEPLOY_FILE, "sdeploy's export metadata (JSON): arch, weights, input contract, labels.",
                                FILE_DESCRIPTIONS)  # fmt: skip
    # ModelMetadata {name, description, version, subgraph_metadata, author, license, associated_files, min_parser_version}
    fields = [meta.name, meta.description, meta.version]
    root = {slot: w.string(text) for slot, text in enumerate(fields)}
    root.update({3: w.vector([subgraph]), 4: w.string(meta.author), 5: w.string(meta.license),
                 6: w.vector([sdeploy]), 7: w.string(MIN_PARSER_VERSION)})  # fmt: skip
    return w.finish(w.table(root))


def _input_tensor(w: _Writer, meta: ClassifierMetadata) -> int:
    if meta.layout == NHWC:
        size = w.table({}, uints={0: meta.img_size, 1: meta.img_size})  # ImageSize {width, height}
        color = next(k for k, v in COLOR_SPACES.items() if v == meta.color_space)
        # ImageProperties {color_space, default_size}
        properties, kind = w.table({1: size}, bytes_={0: color}), CONTENT_IMAGE
        dims = ["batch", "height", "width", "channels"]
    else:  # image properties describe NHWC images only (the Task Library refuses others)
        properties, kind = w.table({}), CONTENT_FEATURE
        dims = ["batch", "channels", "height", "width"]
    content = w.table({1: properties}, bytes_={0: kind})  # Content {content_properties_type, content_properties}
    norm = w.table({0: w.floats(meta.mean), 1: w.floats(meta.std)})  # NormalizationOptions {mean, std}
    unit = w.table({1: norm}, bytes_={0: UNIT_NORMALIZATION})  # ProcessUnit {options_type, options}
    # Stats {max, min}: the range of the tensor the model takes, from 8-bit pixels
    low = [(0 - m) / s for m, s in zip(meta.mean, meta.std, strict=True)]
    high = [(255 - m) / s for m, s in zip(meta.mean, meta.std, strict=True)]
    stats = w.table({0: w.floats(high), 1: w.floats(low)})
    # TensorMetadata {name, description, dimension_names, content, process_units, stats, associated_files}
    return w.table({0: w.string("image"), 1: w.string(meta.input_description), 2: w.vector([w.string(d) for d in dims]),
                    3: content, 4: w.vector([unit]), 5: stats})  # fmt: skip


def _output_tensor(w: _Writer, meta: ClassifierMetadata) -> int:
    content = w.table({1: w.table({})}, bytes_={0: CONTENT_FEATURE})
    labels = w.associated_file(LABELS_FILE, "Class labels, one per line, in output order.", FILE_AXIS_LABELS)
    dims = w.vector([w.string("batch"), w.string("class")])
    return w.table({0: w.string("scores"), 1: w.string(meta.output_description), 2: dims, 3: content,
                    6: w.vector([labels])})  # fmt: skip


def attach_metadata(tflite: bytes, meta: ClassifierMetadata) -> bytes:
    """The model with its metadata buffer (replacing an earlier one) and the zip of associated files appended."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    _inline_external_buffers(model, tflite)
    entry = schema.BufferT()
    entry.data = np.frombuffer(build_metadata(meta), dtype=np.uint8)
    model.metadata = model.metadata or []
    existing = next((m for m in model.metadata if _name(m.name) == METADATA_BUFFER_NAME), None)
    if existing is not None:
        model.buffers[existing.buffer] = entry
    else:
        model.buffers.append(entry)
        record = schema.MetadataT()
        record.name, record.buffer = METADATA_BUFFER_NAME, len(model.buffers) - 1
        model.metadata.append(record)
    builder = flatbuffers.Builder(len(tflite) + len(entry.data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    # Append mode on a file that is no zip writes the archive after its content, as the MetadataPopulator does.
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in meta.files().items():
            archive.writestr(name, content)
    return out.getvalue()


def _inline_external_buffers(model, tflite: bytes) -> None:
    """ai-edge-quantizer stores some buffers after the flatbuffer (``offset``/``size`` into the file);
    re-packing moves everything, so they are pulled back into the flatbuffer first."""
    for buffer in model.buffers or []:
        if (buffer.offset or 0) > 1:
            buffer.data = np.frombuffer(tflite, dtype=np.uint8, count=buffer.size, offset=buffer.offset)
            buffer.offset, buffer.size = 0, 0


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ---------------------------------------------------------------- reader (independent of the writer)


class _Table:
    """A flatbuffer table read with ``struct``: little-endian, 32-bit offsets, a vtable of 16-bit field offsets."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, slot: int) -> int:
        at = 4 + 2 * slot
        return struct.unpack_from("<H", self.buf, self.vtable + at)[0] if at < self.vtable_size else 0

    def scalar(self, slot: int, fmt: str, default=0):
        offset = self._field(slot)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + offset)[0] if offset else default

    def _target(self, slot: int) -> int | None:
        offset = self._field(slot)
        if not offset:
            return None
        at = self.pos + offset
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def _vector(self, slot: int) -> tuple[int, int]:
        at = self._target(slot)
        return (0, 0) if at is None else (at + 4, struct.unpack_from("<I", self.buf, at)[0])

    def string(self, slot: int) -> str | None:
        at = self._target(slot)
        return None if at is None else _string_at(self.buf, at)

    def table(self, slot: int) -> _Table | None:
        at = self._target(slot)
        return None if at is None else _Table(self.buf, at)

    def tables(self, slot: int) -> list[_Table]:
        start, count = self._vector(slot)
        return [_Table(self.buf, _deref(self.buf, start + 4 * i)) for i in range(count)]

    def strings(self, slot: int) -> list[str]:
        start, count = self._vector(slot)
        return [_string_at(self.buf, _deref(self.buf, start + 4 * i)) for i in range(count)]

    def floats(self, slot: int) -> list[float]:
        start, count = self._vector(slot)
        return list(struct.unpack_from(f"<{count}f", self.buf, start)) if count else []

    def raw(self, slot: int) -> bytes:
        start, count = self._vector(slot)
        return self.buf[start : start + count]


def _deref(buf: bytes, at: int) -> int:
    return at + struct.unpack_from("<I", buf, at)[0]


def _string_at(buf: bytes, at: int) -> str:
    length = struct.unpack_from("<I", buf, at)[0]
    return buf[at + 4 : at + 4 + length].decode("utf-8")


def _root(buf: bytes, identifier: bytes) -> _Table:
    if buf[4:8] != identifier:
        raise ValueError(f"flatbuffer identifier {buf[4:8]!r}, expected {identifier!r}")
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


def metadata_buffer(tflite: bytes) -> bytes | None:
    """The raw metadata flatbuffer: Model {buffers: slot 4 [Buffer {data: 0}], metadata: slot 6 [Metadata {name, buffer}]}."""
    model = _root(tflite, MODEL_IDENTIFIER)
    buffers = model.tables(4)
    for entry in model.tables(6):
        if entry.string(0) == METADATA_BUFFER_NAME:
            return buffers[entry.scalar(1, "I")].raw(0)
    return None


def read_metadata(tflite: bytes) -> dict | None:
    """The model's ModelMetadata as a dict, or None when it has none."""
    raw = metadata_buffer(tflite)
    if raw is None:
        return None
    root = _root(raw, METADATA_IDENTIFIER)
    subgraphs = [{"name": sg.string(0), "description": sg.string(1),
                  "inputs": [_read_tensor(t) for t in sg.tables(2)],
                  "outputs": [_read_tensor(t) for t in sg.tables(3)]} for sg in root.tables(3)]  # fmt: skip
    return {"name": root.string(0), "description": root.string(1), "version": root.string(2),
            "author": root.string(4), "license": root.string(5), "associated_files": _read_files(root, 6),
            "min_parser_version": root.string(7), "subgraphs": subgraphs}  # fmt: skip


def _read_files(table: _Table, slot: int) -> list[dict]:
    return [{"name": f.string(0), "description": f.string(1), "type": FILE_TYPES.get(f.scalar(2, "b"), "other")}
            for f in table.tables(slot)]  # fmt: skip


def _read_tensor(tensor: _Table) -> dict:
    out = {"name": tensor.string(0), "description": tensor.string(1), "dimension_names": tensor.strings(2),
           "content": _read_content(tensor.table(3)), "associated_files": _read_files(tensor, 6)}  # fmt: skip
    units = [unit.table(1) for unit in tensor.tables(4) if unit.scalar(0, "B") == UNIT_NORMALIZATION]
    if units:
        out["normalization"] = {"mean": units[0].floats(0), "std": units[0].floats(1)}
    stats = tensor.table(5)
    if stats is not None:
        out["stats"] = {"max": stats.floats(0), "min": stats.floats(1)}
    return out


def _read_content(content: _Table | None) -> dict | None:
    if content is None:
        return None
    kind, properties = content.scalar(0, "B"), content.table(1)
    if kind != CONTENT_IMAGE or properties is None:
        return {"kind": "feature" if kind == CONTENT_FEATURE else kind}
    size = properties.table(1)
    return {"kind": "image", "color_space": COLOR_SPACES.get(properties.scalar(0, "b"), "other"),
            "size": None if size is None else [size.scalar(0, "I"), size.scalar(1, "I")]}  # fmt: skip


def read_associated_files(tflite: bytes) -> dict[str, bytes]:
    """The files zipped onto the model, by name."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def read_sdeploy_metadata(tflite: bytes) -> dict | None:
    """sdeploy's own metadata, as embedded in every artifact that has a place for it."""
    data = read_associated_files(tflite).get(SDEPLOY_FILE)
    return None if data is None else json.loads(data)
