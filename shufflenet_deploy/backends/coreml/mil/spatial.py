"""2-D convolution and pooling with Core ML's padding rules.

Padding follows coremltools' ``aggregated_pad``/``spatial_dimensions_out_shape``
(``converters/mil/mil/ops/defs/_utils.py``): ``same`` pads
``max(0, s*ceil(i/s) - i + k_eff - s)`` in total with the odd element at the
end, ``same_lower`` puts it at the start, and ``ceil_mode`` pooling follows
PyTorch, as the MIL ``avg_pool`` documentation states.

Kernels are computed as a sum over the (few) kernel offsets of strided
slices, so no Python loop ever runs over channels or pixels.
"""

from __future__ import annotations

import math

import numpy as np

from ....errors import SdeployError


def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    _require_2d("conv", x)
    kernel = weight.shape[2:]
    strides, dilations = _pair(strides), _pair(dilations)
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    pads = _paddings(pad_type, pad, x.shape[2:], effective, strides)
    out_size = [
        (i + before + after - k) // s + 1 for i, (before, after), k, s in zip(x.shape[2:], pads, effective, strides)
    ]
    padded = np.pad(x, ((0, 0), (0, 0), *pads))
    groups = int(groups)
    if groups == x.shape[1] and weight.shape[1] == 1:
        out = _depthwise(padded, weight, strides, dilations, out_size)
    else:
        out = _grouped(padded, weight, groups, strides, dilations, out_size)
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def max_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    _require_2d("max_pool", x)
    padded, out_size, _ = _pool_input(x, kernel_sizes, strides, pad_type, pad, ceil_mode, -np.inf)
    result = None
    for window in _windows(padded, kernel_sizes, _pair(strides), (1, 1), out_size):
        result = window.copy() if result is None else np.maximum(result, window, out=result)
    return result


def avg_pool(
    x, kernel_sizes, strides=None, pad_type="valid", pad=None, exclude_padding_from_average=False, ceil_mode=False
):
    _require_2d("avg_pool", x)
    padded, out_size, pads = _pool_input(x, kernel_sizes, strides, pad_type, pad, ceil_mode, 0.0)
    strides = _pair(strides)
    total = sum(_windows(padded, kernel_sizes, strides, (1, 1), out_size))
    counted = _counted_positions(x.shape[2:], pads, padded.shape[2:], exclude_padding_from_average)
    divisor = sum(_windows(counted[None, None], kernel_sizes, strides, (1, 1), out_size))
    return (total / divisor).astype(np.float32)


def _depthwise(padded, weight, strides, dilations, out_size):
    """One multiply-add per kernel offset, vectorised over batch, channels and pixels."""
    multiplier = weight.shape[0] // padded.shape[1]
    if multiplier > 1:
        padded = np.repeat(padded, multiplier, axis=1)
    taps = weight.reshape(weight.shape[0], -1)
    out = np.zeros((padded.shape[0], weight.shape[0], *out_size), np.float32)
    for tap, window in enumerate(_windows(padded, weight.shape[2:], strides, dilations, out_size)):
        out += window * taps[:, tap].reshape(1, -1, 1, 1)
    return out


def _grouped(padded, weight, groups, strides, dilations, out_size):
    """im2col per group, then one batched matrix product."""
    n, c_in = padded.shape[:2]
    c_out, c_group = weight.shape[:2]
    if c_group * groups != c_in or c_out % groups:
        raise SdeployError(f"conv weight {weight.shape} does not fit {c_in} input channels in {groups} groups")
    columns = np.stack(list(_windows(padded, weight.shape[2:], strides, dilations, out_size)), axis=2)
    columns = columns.reshape(n, groups, c_group * columns.shape[2], -1)  # (N, G, Cin/G * K, Ho*Wo)
    kernels = weight.reshape(groups, c_out // groups, -1)  # (G, Cout/G, Cin/G * K), same (channel, tap) order
    return np.matmul(kernels, columns).reshape(n, c_out, *out_size)


def _windows(padded, kernel, strides, dilations, out_size):
    """The strided slice of ``padded`` seen by each kernel offset, in row-major offset order."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dilations, out_size
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            yield padded[..., top : top + sh * (oh - 1) + 1 : sh, left : left + sw * (ow - 1) + 1 : sw]


def _pool_input(x, kernel, strides, pad_type, pad, ceil_mode, fill):
    """``x`` padded with ``fill`` for pooling, the output size, and the declared (before, after) padding."""
    strides = _pair(strides)
    pads = _paddings(pad_type, pad, x.shape[2:], kernel, strides)
    out_size = [
        _pool_out(i, k, s, before + after, ceil_mode)
        for i, k, s, (before, after) in zip(x.shape[2:], kernel, strides, pads)
    ]
    # ceil_mode's last window may reach past the declared padding; those cells are filled too.
    reach = [
        max(after, (o - 1) * s + k - i - before)
        for o, s, k, i, (before, after) in zip(out_size, strides, kernel, x.shape[2:], pads)
    ]
    widths = [(before, extra) for (before, _), extra in zip(pads, reach)]
    return np.pad(x, ((0, 0), (0, 0), *widths), constant_values=fill), out_size, pads


def _counted_positions(in_size, pads, padded_size, exclude_padding):
    """1 where a padded position counts towards an average's divisor, as in PyTorch.

    The real pixels always count and the declared padding counts unless
    excluded; the cells ceil_mode reads beyond the declared padding never do.
    """
    counted = np.zeros(padded_size, np.float32)
    if exclude_padding:
        (top, _), (left, _) = pads
        counted[top : top + in_size[0], left : left + in_size[1]] = 1
    else:
        counted[: in_size[0] + sum(pads[0]), : in_size[1] + sum(pads[1])] = 1
    return counted


def _pool_out(size, kernel, stride, total_pad, ceil_mode):
    if not ceil_mode:
        return (size + total_pad - kernel) // stride + 1
    out = math.floor((size + total_pad - kernel + stride - 1) / stride) + 1
    # PyTorch's rule: the last window must start inside the input or the left padding.
    if total_pad > 0 and (out - 1) * stride >= size + total_pad / 2:
        out -= 1
    return out


def _paddings(pad_type, pad, in_size, effective_kernel, strides):
    """(before, after) padding per spatial dimension."""
    if pad_type == "valid":
        return [(0, 0) for _ in in_size]
    if pad_type == "custom":
        pad = [int(p) for p in pad]
        return [(pad[2 * d], pad[2 * d + 1]) for d in range(len(in_size))]
    if pad_type in ("same", "same_lower"):
        result = []
        for i, k, s in zip(in_size, effective_kernel, strides):
            total = max(0, s * math.ceil(i / s) - i + k - s)
            small, large = total // 2, total - total // 2
            result.append((small, large) if pad_type == "same" else (large, small))
        return result
    raise SdeployError(f"Core ML pad_type '{pad_type}' is not supported by the NumPy interpreter")


def _pair(values):
    return (1, 1) if values is None else tuple(int(v) for v in values)


def _require_2d(op: str, x) -> None:
    if x.ndim != 4:
        raise SdeployError(
            f"Core ML op '{op}' on a rank-{x.ndim} tensor is not supported by the NumPy interpreter (2-D only)"
        )
