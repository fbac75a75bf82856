"""OpenVINO: a second, independent runtime for ONNX artifacts (verify runs it by default when installed).

It computes in fp32 here: on CPUs with bf16 support OpenVINO's default
inference precision is bf16, which would hide a conversion bug in rounding
noise (and fail fp32 parity for the wrong reason).
"""

from __future__ import annotations

import numpy as np

from .base import Runner, crosscheck_backend
from .onnx import FORMAT as ONNX_FORMAT


class OpenVinoRunner(Runner):
    name = "openvino"
    requires = ("openvino",)
    extra = "crosscheck"

    @classmethod
    def known_problem(cls, record: dict, manifest: dict) -> str | None:
        import openvino as ov

        fixed_after = (2026, 4)  # the newest version the problem was seen in; newer ones are checked again
        if record["precision"] == "int8" and manifest["family"] == "v1" and _version(ov.get_version()) <= fixed_after:
            return ("OpenVINO up to 2026.4 computes int8 grouped convolutions with more than 64 input channels per "
                    "group wrongly (ShuffleNet V1's), without an error")
        return None

    def load(self) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version()

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer([batch])[self.compiled.outputs[0]], dtype=np.float32, copy=True)

    @property
    def description(self) -> str:
        return f"OpenVINO {self.version} CPU, f32 inference precision, {self.threads or 'default'} threads"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split(".")[:2] if part.isdigit())


BACKEND = crosscheck_backend(OpenVinoRunner, ONNX_FORMAT,
                             "OpenVINO CPU (f32): checks ONNX artifacts in a second runtime", "openvino",
                             "tab:cyan", 15)
