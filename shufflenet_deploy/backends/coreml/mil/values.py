"""Typed values of an ML Program: MIL data types, inline literals and the weight blob file.

Every float tensor is *held* as float32, whatever its declared type: an fp16
value is a float32 array whose entries are exactly representable in fp16
(see :func:`coerce`).  That keeps every kernel single-precision and makes the
fp16 simulation one rounding step per op output.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ....errors import SdeployError

#: MIL data type name -> numpy dtype a value of that type is held in.
HOLDER_DTYPES = {
    "FLOAT16": np.float32,
    "FLOAT32": np.float32,
    "FLOAT64": np.float64,
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
#: How inline ``bytes`` literals and blob data are laid out (fp16 differs from its holder).
STORAGE_DTYPES = {**HOLDER_DTYPES, "FLOAT16": np.float16}
#: Names of ``cast``'s ``dtype`` strings, as MIL data type names.
CAST_NAMES = {
    "fp16": "FLOAT16",
    "fp32": "FLOAT32",
    "fp64": "FLOAT64",
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
}

BLOB_SENTINEL = 0xDEADBEEF
BLOB_METADATA = struct.Struct("<IIQQ")  # sentinel, blob dtype code, size in bytes, data offset
MODEL_PATH_PREFIX = "@model_path/"


def coerce(value, type_name: str | None):
    """``value`` as an op output of MIL type ``type_name``: this is where fp16 rounding happens."""
    if type_name is None or type_name == "STRING" or not isinstance(value, (np.ndarray, np.generic, float, int)):
        return value
    if type_name == "FLOAT16":
        return np.asarray(value, np.float32).astype(np.float16).astype(np.float32)
    if type_name not in HOLDER_DTYPES:
        raise SdeployError(f"Core ML data type {type_name} is not supported by the NumPy interpreter")
    return np.asarray(value).astype(HOLDER_DTYPES[type_name], copy=False)


class BlobFile:
    """One ``weights/weight.bin``, parsed here rather than with coremltools' private reader.

    Layout (MIL blob storage v2): a 64-byte file header, then per blob a 64-byte
    metadata record at the offset the spec names -- ``uint32 0xDEADBEEF``,
    ``uint32`` dtype code, ``uint64`` size in bytes, ``uint64`` data offset --
    followed by the raw little-endian data.  The dtype comes from the spec's
    declared type; the record's byte size cross-checks it.
    """

    def __init__(self, path: Path):
        if not path.is_file():
            raise SdeployError(f"Core ML weight file not found: {path}")
        self.path = path
        self.data = path.read_bytes()

    def read(self, offset: int, type_name: str, count: int) -> np.ndarray:
        if offset + BLOB_METADATA.size > len(self.data):
            raise SdeployError(f"{self.path}: weight offset {offset} is past the end of the file")
        sentinel, _, size, data_offset = BLOB_METADATA.unpack_from(self.data, offset)
        dtype = np.dtype(STORAGE_DTYPES[type_name])
        if sentinel != BLOB_SENTINEL or size != count * dtype.itemsize or data_offset + size > len(self.data):
            raise SdeployError(f"{self.path}: corrupt weight record at offset {offset}")
        return np.frombuffer(self.data, dtype, count, data_offset)


class ValueReader:
    """Turns ``MIL_pb2.Value`` messages into numpy arrays, strings and lists."""

    def __init__(self, model_dir: Path, data_type_name):
        self.model_dir = model_dir
        self.type_name = data_type_name  # MIL_pb2.DataType.Name
        self.blobs: dict[Path, BlobFile] = {}

    def read(self, value):
        kind = value.type.WhichOneof("type")
        if kind == "tensorType":
            return self._tensor(value)
        if kind == "listType" and value.WhichOneof("value") == "immediateValue":
            return [self.read(item) for item in value.immediateValue.list.values]
        raise SdeployError(f"Core ML literal of type {kind} is not supported by the NumPy interpreter")

    def _tensor(self, value):
        tensor_type = value.type.tensorType
        type_name = self.type_name(tensor_type.dataType)
        shape = tuple(dim.constant.size for dim in tensor_type.dimensions)
        if type_name == "STRING":
            strings = list(value.immediateValue.tensor.strings.values)
            return strings[0] if shape == () else np.array(strings, dtype=object).reshape(shape)
        if type_name not in STORAGE_DTYPES:
            raise SdeployError(f"Core ML constants of type {type_name} are not supported by the NumPy interpreter")
        count = int(np.prod(shape, dtype=np.int64))
        if value.WhichOneof("value") == "blobFileValue":
            raw = self._blob(value.blobFileValue).read(value.blobFileValue.offset, type_name, count)
        else:
            raw = self._immediate(value.immediateValue.tensor, type_name)
        return coerce(raw.reshape(shape), type_name)

    @staticmethod
    def _immediate(tensor, type_name: str) -> np.ndarray:
        field = tensor.WhichOneof("value")
        if field is None:  # an empty tensor sets no field at all
            return np.zeros(0, STORAGE_DTYPES[type_name])
        if field == "bytes":
            # fp16 and the 8-bit types are stored packed, as raw little-endian bytes.
            return np.frombuffer(tensor.bytes.values, STORAGE_DTYPES[type_name])
        return np.array(list(getattr(tensor, field).values), dtype=STORAGE_DTYPES[type_name])

    def _blob(self, blob_value) -> BlobFile:
        name = blob_value.fileName
        path = self.model_dir / name.removeprefix(MODEL_PATH_PREFIX)
        if path not in self.blobs:
            self.blobs[path] = BlobFile(path)
        return self.blobs[path]
