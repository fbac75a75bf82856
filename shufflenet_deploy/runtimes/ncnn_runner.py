"""NCNN through its Python module, with the blob names the manifest records."""

from __future__ import annotations

import numpy as np

from ..errors import SdeployError
from .base import Runner

_FP16_OPTIONS = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic")


class NcnnRunner(Runner):
    name = "ncnn"
    formats = ("ncnn",)
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
