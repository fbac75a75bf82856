"""ONNX Runtime, CPU execution provider."""

from __future__ import annotations

import numpy as np

from .base import Runner


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"
    formats = ("onnx",)
    requires = ("onnxruntime",)
    extra = "onnx"

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT warns about harmless initializer cleanups
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.record["outputs"][0]["name"]
        self.version = ort.__version__

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    @property
    def description(self) -> str:
        return f"onnxruntime {self.version} CPUExecutionProvider, {self.threads or 'default'} threads"
