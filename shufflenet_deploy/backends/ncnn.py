"""NCNN: a traced TorchScript module converted by pnnx to ``.ncnn.param`` + ``.ncnn.bin``, run by ncnn.

pnnx's Python wrapper imports the Python code it generates, which fails for
some module names, so the pnnx binary is called directly with every output
path spelled out.  NCNN runs one image at a time (its Mat has no batch axis)
and has no metadata fields: the manifest carries the blob names and contract.

int8 is not offered: ncnn quantizes with its ``ncnn2table`` (calibration) and
``ncnn2int8`` tools, which only an ncnn source build provides; the ncnn and
pnnx wheels ship neither, nor a Python API for them.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from ..errors import SdeployError
from .base import Artifact, Backend, ExportContext, Runner, Target, TensorSpec
from .options import Option

PNNX_TIMEOUT_S = 600
#: Files pnnx writes besides the ncnn pair, by the argument that names them.
_INTERMEDIATES = {
    "pnnxparam": ".pnnx.param",
    "pnnxbin": ".pnnx.bin",
    "pnnxpy": "_pnnx.py",
    "pnnxonnx": ".pnnx.onnx",
    "ncnnpy": "_ncnn.py",
}


class NcnnTarget(Target):
    name = "ncnn"
    suffixes = (".ncnn.param", ".ncnn.bin")
    io_unavailable = (
        "ncnn takes a float CHW ncnn::Mat (apps fill it with Mat::from_pixels_resize and substract_mean_normalize, "
        "which do the preprocessing); export ncnn without --embed-preprocess, --layout or --softmax"
    )
    int8_unavailable = (
        "ncnn int8 needs ncnn2table/ncnn2int8 from an ncnn source build (not in the ncnn/pnnx wheels); "
        "export ncnn without --quantize for fp32, or with --half for fp16"
    )

    def export(self, ctx: ExportContext) -> Artifact:
        param, binary = self.file_names(ctx.arch, ctx.options)
        work = ctx.staging / "pnnx"
        work.mkdir()
        traced = work / f"{ctx.arch}.pt"
        example = torch.zeros(1, 3, ctx.img_size, ctx.img_size)
        with torch.no_grad():
            traced_module = torch.jit.trace(ctx.model.eval(), example)
        buffer = io.BytesIO()  # written by Python: torch's file writer aborts the process on a full disk
        torch.jit.save(traced_module, buffer)
        traced.write_bytes(buffer.getvalue())
        _run_pnnx(traced, ctx, ctx.staging / param, ctx.staging / binary, work)
        input_blob, output_blob = blob_names(ctx.staging / param)
        layers = layer_counts(ctx.staging / param)

        details = {"input_blob": input_blob, "output_blob": output_blob, "layers": layers, "fp16_weights": ctx.options.half}
        notes = []
        if ctx.options.keep_intermediate:
            kept = param.removesuffix(".ncnn.param") + ".pnnx"
            work.rename(ctx.staging / kept)
            details["intermediate_dir"] = kept
        else:
            shutil.rmtree(work)
        if ctx.options.batch != 1 or ctx.options.dynamic_batch:
            notes.append("ncnn runs one image per call; batch options do not apply")
        return Artifact(
            key=self.key(ctx.options),
            target=self.name,
            format="ncnn",
            files=[param, binary],
            extras=[details["intermediate_dir"]] if "intermediate_dir" in details else [],
            precision="fp16" if ctx.options.half else "fp32",
            inputs=[TensorSpec(input_blob, (1, 3, ctx.img_size, ctx.img_size))],
            outputs=[TensorSpec(output_blob, (1, ctx.num_classes))],
            exporter="torch.jit.trace + pnnx",
            details=details,
            notes=notes,
        )


def _run_pnnx(traced: Path, ctx: ExportContext, param: Path, binary: Path, work: Path) -> None:
    import pnnx

    # pnnx runs inside ``work`` (it drops stray files into its cwd), so every path must be absolute.
    traced, param, binary, work = (p.resolve() for p in (traced, param, binary, work))
    size = ctx.img_size
    stem = ctx.arch
    command = [
        pnnx.EXEC_PATH,
        str(traced),
        f"inputshape=[1,3,{size},{size}]f32",
        f"fp16={1 if ctx.options.half else 0}",
        f"ncnnparam={param}",
        f"ncnnbin={binary}",
        *(f"{arg}={work / (stem + suffix)}" for arg, suffix in _INTERMEDIATES.items()),
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S, cwd=work)
    except subprocess.TimeoutExpired:
        raise SdeployError(f"pnnx did not finish within {PNNX_TIMEOUT_S}s") from None
    if result.returncode != 0 or not param.exists() or not binary.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SdeployError(f"pnnx failed (exit code {result.returncode}): {tail[0]}")


def read_layers(param: Path) -> list[list[str]]:
    """The layer lines of an ncnn .param file, split into fields (magic and count lines dropped)."""
    lines = param.read_text().splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise SdeployError(f"{param} is not an ncnn param file")
    return [line.split() for line in lines[2:] if line.strip()]


def blob_names(param: Path) -> tuple[str, str]:
    """(input blob, output blob): the Input layer's top and the one blob no layer consumes."""
    layers = read_layers(param)
    produced, consumed = [], set()
    input_blob = None
    for fields in layers:
        kind, n_in, n_out = fields[0], int(fields[2]), int(fields[3])
        bottoms, tops = fields[4 : 4 + n_in], fields[4 + n_in : 4 + n_in + n_out]
        consumed.update(bottoms)
        produced.extend(tops)
        if kind == "Input":
            input_blob = tops[0]
    outputs = [b for b in produced if b not in consumed]
    if input_blob is None or len(outputs) != 1:
        raise SdeployError(f"{param}: expected one Input layer and one output blob, found outputs {outputs}")
    return input_blob, outputs[0]


def layer_counts(param: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fields in read_layers(param):
        counts[fields[0]] = counts.get(fields[0], 0) + 1
    return dict(sorted(counts.items()))


_FP16_OPTIONS = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic")


class NcnnRunner(Runner):
    name = "ncnn"
    requires = ("ncnn",)
    extra = "ncnn"

    def load(self) -> None:
        import ncnn

        self.ncnn = ncnn
        self.net = ncnn.Net()
        # fp32 artifacts run in fp32 so parity is exact; fp16 ones run the fp16 paths a phone would.
        self.fp16 = self.record["precision"] == "fp16"
        for option in _FP16_OPTIONS:
            setattr(self.net.opt, option, self.fp16)
        self.net.opt.use_bf16_storage = False
        if self.threads:
            self.net.opt.num_threads = self.threads
        param, binary = (self.export_dir / f["path"] for f in self.record["files"][:2])
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(binary)) != 0:
            raise SdeployError(f"ncnn could not load {param.name} / {binary.name}")
        details = self.record["details"]
        self.input_blob, self.output_blob = details["input_blob"], details["output_blob"]

    @property
    def batch_size(self) -> int:
        return 1

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        # ncnn.Mat borrows the array's memory: keep `image` referenced until extraction is done.
        image = np.ascontiguousarray(batch[0], dtype=np.float32)
        with self.net.create_extractor() as extractor:
            extractor.input(self.input_blob, self.ncnn.Mat(image))
            status, output = extractor.extract(self.output_blob)
            if status != 0:
                raise SdeployError(f"ncnn could not compute blob {self.output_blob} (status {status})")
            return np.array(output, dtype=np.float32).reshape(1, -1).copy()

    @property
    def description(self) -> str:
        mode = "fp16 storage+arithmetic" if self.fp16 else "fp32"
        return f"ncnn {self.ncnn.__version__} CPU, {mode}, {self.threads or 'default'} threads"


BACKEND = Backend(
    name="ncnn",
    summary="NCNN model (.ncnn.param + .ncnn.bin) via pnnx; runs in ncnn",
    format="ncnn",
    target=NcnnTarget(),
    runner=NcnnRunner,
    files="<arch>.ncnn.param + <arch>.ncnn.bin (-fp16)",
    extra="ncnn",
    packages=("pnnx", "ncnn"),
    modules=("pnnx", "ncnn"),
    options=(Option("keep_intermediate", bool, False, "Keep pnnx's intermediate files (in <arch>.pnnx/)."),),
    bench_variants={"fp32": {}, "fp16": {"half": True}},
    color="tab:green",
    order=40,
)
