"""The ExecuTorch target: torch.export -> (PT2E int8) -> to_edge_transform_and_lower(XNNPACK) -> to_executorch.

The network goes in through :func:`.delegable.delegable`, so XNNPACK takes
every node of a ShuffleNet (the dtype casts at the I/O aside: XNNPACK
converts no dtypes).  What it did take is counted in the lowered graph and
recorded; anything else left to the portable kernels is a note.
"""

from __future__ import annotations

from collections import Counter
from importlib import metadata as importlib_metadata

import torch

from ...errors import SdeployError
from ...modelio import to_model_input
from ..base import Artifact, ExportContext, Target, batch_dim, example_batch
from ..calibration import fixed_batches as calibration_batches
from ..options import ExportOptions
from .delegable import delegable
from .runner import METADATA_METHOD

LOWERING = "to_edge_transform_and_lower(XnnpackPartitioner) + to_executorch"
EXPORTERS = {
    "fp32": f"torch.export + {LOWERING}",
    "fp16": f"BatchNorm folded in fp32, .half() with fp32 I/O + torch.export + {LOWERING}",
    "int8": f"torch.export + PT2E XNNPACKQuantizer (static int8, per-channel weights, fp32 I/O) + {LOWERING}",
}
#: Edge ops that mark an XNNPACK partition; every other call is a node on the portable kernels.
DELEGATE_CALL = "executorch_call_delegate"
#: dtype conversions (uint8 pixels -> float, fp32 <-> fp16 at the I/O) have no XNNPACK config.
CAST_OP = "_to_dim_order_copy"


class ExecuTorchTarget(Target):
    name = "executorch"
    suffixes = (".pte",)
    int8_calibrates = True  # static int8: activation ranges come from calibration images

    def export(self, ctx: ExportContext) -> Artifact:
        options = ctx.options
        precision = "int8" if options.int8 else "fp16" if options.half else "fp32"
        module = delegable(ctx.model, half=options.half).eval()
        example = ctx.example(example_batch(options))
        dynamic = dynamic_shapes(options)
        details = {}
        if options.int8:
            module, details["quantization"] = quantize_int8(module, example, dynamic, ctx)
        edge = lower(module, example, dynamic, {METADATA_METHOD: ctx.metadata_json()})
        counts = delegation_counts(edge.exported_program())
        data = edge.to_executorch().buffer
        name = self.file_names(ctx.arch, options)[0]
        (ctx.staging / name).write_bytes(data)
        notes = delegation_notes(counts, options)
        batch = batch_dim(options)
        return Artifact(
            key=self.key(options),
            target=self.name,
            format="pte",
            files=[name],
            precision=precision,
            inputs=[ctx.input_spec("input", batch)],
            outputs=[ctx.output_spec(ctx.io.output_name, batch)],
            exporter=EXPORTERS[precision],
            details={
                **program_versions(data),
                **counts,
                **({"delegation_note": " ".join(notes)} if notes else {}),
                "dynamic_batch": options.dynamic_batch,
                **({"max_batch": max_batch(options)} if options.dynamic_batch else {}),
                "batchnorm_folded_fp32": options.half,
                "metadata_methods": [METADATA_METHOD],
                **details,
            },
            notes=notes,
        )


def max_batch(options: ExportOptions) -> int:
    return max(options.batch, options.pte_max_batch)


def dynamic_shapes(options: ExportOptions) -> tuple | None:
    """A batch of 1 to the largest batch: ExecuTorch plans memory for the upper bound, so it must be modest."""
    if not options.dynamic_batch:
        return None
    return ({0: torch.export.Dim("batch", min=1, max=max_batch(options))},)


def lower(module: torch.nn.Module, example: torch.Tensor, dynamic: tuple | None = None, constant_methods: dict | None = None):
    """The EdgeProgramManager with XNNPACK's partitions lowered; ``constant_methods`` become zero-input methods."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=constant_methods)


def quantize_int8(module: torch.nn.Module, example: torch.Tensor, dynamic: tuple | None, ctx: ExportContext):
    """Static int8 by PT2E: XNNPACK's quantizer annotates, the calibration images set the activation ranges."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if ctx.calibration is None:
        raise SdeployError("--quantize int8 for executorch needs calibration images: pass --calib DIR")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(module, (example,), dynamic_shapes=dynamic).module(), quantizer)
    # The same images and preprocessing as every int8 export, in the artifact's own input (pixels, NHWC...).
    inputs = to_model_input(ctx.calibration.tensors, ctx.contract, ctx.io)
    with torch.no_grad():
        for batch in calibration_batches(inputs, None if ctx.options.dynamic_batch else ctx.options.batch):
            prepared(torch.from_numpy(batch))
    return convert_pt2e(prepared), {
        "method": "PT2E static (prepare_pt2e/convert_pt2e) with XNNPACKQuantizer",
        "activations": "int8 per-tensor affine, ranges from histograms of the calibration activations",
        "weights": "int8 symmetric, per-channel",
        "calibration": ctx.calibration.describe(),
    }


def delegation_counts(lowered) -> dict:
    """XNNPACK partitions, the nodes inside them, and the nodes left outside by op, in a lowered ExportedProgram."""
    partitions, inside, outside = 0, 0, Counter()
    for node in call_nodes(lowered.graph):
        if op_name(node.target) == DELEGATE_CALL:
            partitions += 1
            inside += len(call_nodes(getattr(lowered.graph_module, node.args[0].target).original_module.graph))
        else:
            outside[op_name(node.target)] += 1
    return {
        "xnnpack_partitions": partitions,
        "delegated_nodes": inside,
        "non_delegated_nodes": sum(outside.values()),
        "ops_outside_xnnpack": dict(sorted(outside.items())),
        "fully_delegated": partitions == 1 and not outside,
    }


def call_nodes(graph) -> list:
    return [node for node in graph.nodes if node.op == "call_function" and op_name(node.target) != "getitem"]


def op_name(target) -> str:
    """``aten.mean.dim``, ``dim_order_ops._to_dim_order_copy.default``, ``executorch_call_delegate``..."""
    return getattr(target, "__name__", str(target))


def delegation_notes(counts: dict, options: ExportOptions) -> list[str]:
    """A warning for every node XNNPACK did not take, but the I/O dtype casts it cannot take."""
    outside = {op: n for op, n in counts["ops_outside_xnnpack"].items() if CAST_OP not in op}
    if not outside:
        return []
    listed = ", ".join(f"{op} x{n}" for op, n in outside.items())
    note = (f"{sum(outside.values())} nodes run on ExecuTorch's portable kernels, not XNNPACK ({listed}), in "
            f"{counts['xnnpack_partitions']} XNNPACK partitions: slower than one partition")  # fmt: skip
    if options.dynamic_batch and all("slice_copy" in op for op in outside):
        note += ("; XNNPACK takes no slice of a tensor with a dynamic batch (ShuffleNet V2 splits its channels "
                 "with slices): export with a fixed --batch for one partition")  # fmt: skip
    return [note]


def program_versions(data: bytes) -> dict:
    """The exporter's version (a runtime older than it may not load the file) and the file's schema marks."""
    from executorch.exir.version import EXECUTORCH_SCHEMA_VERSION

    return {
        "executorch_version": importlib_metadata.version("executorch"),
        "pte_file_identifier": bytes(data[4:8]).decode("ascii", errors="replace"),  # flatbuffer identifier, e.g. ET12
        "pte_schema_version": EXECUTORCH_SCHEMA_VERSION,
    }
