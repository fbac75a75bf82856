"""NumPy kernels for the MIL ops sdeploy's Core ML exports contain.

Each kernel takes the op's parameters as keyword arguments, named and
defaulted as in coremltools' op definitions
(``coremltools/converters/mil/mil/ops/defs``), and returns one value or a
tuple of values.  Kernels compute in float32; rounding to an op's declared
output type (fp16 included) is the executor's job, so kernels never need to
know the program's precision.
"""

from __future__ import annotations

import numpy as np

from ....errors import SdeployError
from .spatial import avg_pool, conv, max_pool
from .values import CAST_NAMES, HOLDER_DTYPES


def relu(x):
    return np.maximum(x, x.dtype.type(0))


def add(x, y):
    return np.add(x, y)


def sub(x, y):
    return np.subtract(x, y)


def mul(x, y):
    return np.multiply(x, y)


def real_div(x, y):
    return np.true_divide(x, y)


def cast(x, dtype):
    # Rounding to fp16, when dtype is fp16, follows from the declared output type.
    if str(dtype) not in CAST_NAMES:
        raise SdeployError(f"Core ML cast to '{dtype}' is not supported by the NumPy interpreter")
    return np.asarray(x).astype(HOLDER_DTYPES[CAST_NAMES[str(dtype)]])


def softmax(x, axis=-1):
    axis = int(axis)
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def reduce_mean(x, axes=None, keep_dims=False):
    axes = None if axes is None else tuple(int(a) for a in np.ravel(axes))
    return np.mean(x, axis=axes, keepdims=bool(keep_dims), dtype=np.float32)


def linear(x, weight, bias=None):
    out = np.matmul(x, weight.T)
    return out if bias is None else out + bias


def matmul(x, y, transpose_x=False, transpose_y=False):
    if transpose_x and x.ndim > 1:
        x = np.swapaxes(x, -1, -2)
    if transpose_y and y.ndim > 1:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def concat(values, axis, interleave=False):
    axis = int(axis) % values[0].ndim
    if not interleave:
        return np.concatenate(values, axis=axis)
    # interleave=True: output[i::n] = values[i] along ``axis`` (MIL concat docs), which is
    # exactly a stack on a new axis right after ``axis`` merged back into it.
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return np.stack(values, axis=axis + 1).reshape(shape)


def split(x, axis, num_splits=None, split_sizes=None):
    if split_sizes is not None:
        sections = np.cumsum([int(s) for s in split_sizes])[:-1]
    else:
        sections = int(num_splits)
    return tuple(np.split(x, sections, axis=int(axis)))


def reshape(x, shape):
    target = []
    for position, size in enumerate(int(s) for s in shape):
        if size == 0:
            # 0 copies the input dimension aligned from the right (iOS17 rule; for
            # len(shape) == rank it is also the iOS15 rule), or 1 past the input's rank.
            source = x.ndim - (len(shape) - position)
            size = x.shape[source] if source >= 0 else 1
        target.append(size)
    return x.reshape(target)


def transpose(x, perm):
    return np.transpose(x, [int(p) for p in perm])


def squeeze(x, axes=None):
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(int(a) for a in np.ravel(axes)))


def expand_dims(x, axes):
    return np.expand_dims(x, tuple(int(a) for a in np.ravel(axes)))


def classify(probabilities, classes):
    """One (label, {label: probability}) per row; lists so that batches concatenate."""
    labels = [c if isinstance(c, str) else int(c) for c in classes]
    rows = np.asarray(probabilities, np.float64).reshape(-1, len(labels))
    predicted = [labels[int(i)] for i in rows.argmax(axis=1)]
    dictionaries = [dict(zip(labels, map(float, row))) for row in rows]
    return predicted, dictionaries


def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    axis = int(axis) % quantized_data.ndim

    def along_axis(values):
        values = np.asarray(values, np.float32)
        if values.ndim == 0:
            return values
        shape = [1] * quantized_data.ndim
        shape[axis] = -1
        return values.reshape(shape)

    return (quantized_data.astype(np.float32) - along_axis(zero_point)) * along_axis(scale)


def constexpr_blockwise_shift_scale(data, scale, offset=None):
    data = data.astype(np.float32)
    if offset is not None:
        data = data - _repeat_blocks(np.asarray(offset, np.float32), data.shape)
    return data * _repeat_blocks(scale, data.shape)


def _repeat_blocks(values, shape):
    """Expand a per-block tensor to ``shape``: block size = data dim / values dim."""
    for axis, (full, blocks) in enumerate(zip(shape, values.shape)):
        if full != blocks:
            values = np.repeat(values, full // blocks, axis=axis)
    return values


#: Ops run for every input, by MIL op type.
RUNTIME_OPS = {
    fn.__name__: fn
    for fn in (
        add,
        avg_pool,
        cast,
        classify,
        concat,
        conv,
        expand_dims,
        linear,
        matmul,
        max_pool,
        mul,
        real_div,
        reduce_mean,
        relu,
        reshape,
        softmax,
        split,
        squeeze,
        sub,
        transpose,
    )
}
#: Compile-time ops (weight decompression): evaluated once, when the program is loaded.
CONSTEXPR_OPS = {fn.__name__: fn for fn in (constexpr_affine_dequantize, constexpr_blockwise_shift_scale)}
