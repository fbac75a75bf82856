"""OpenCV DNN: ONNX artifacts checked in OpenCV 5's two engines (verify runs both by default when installed).

OpenCV 5 has a new graph engine (the default) and keeps the classic one;
apps meet either, and they fail differently, so both are runtimes here.
"""

from __future__ import annotations

import numpy as np

from .base import Runner, crosscheck_backend
from .onnx import FORMAT as ONNX_FORMAT

LAST_STAGE_STRIDE = 32


class OpenCvRunner(Runner):
    name = "opencv"
    requires = ("cv2",)
    extra = "crosscheck"
    engine = "ENGINE_AUTO"  # OpenCV 5's default: the new engine, the classic one only if parsing fails

    @classmethod
    def known_problem(cls, record: dict, manifest: dict) -> str | None:
        import cv2

        if record["precision"] == "int8" and cv2.__version__.startswith("5.0."):
            return ("OpenCV 5.0's default DNN engine computes int8 1x1 convolutions wrongly when H x W is not a multiple "
                    "of 8, and refuses this graph; run int8 ONNX with the classic engine (opencv-classic)")
        return None

    def load(self) -> None:
        import cv2

        if self.threads:
            cv2.setNumThreads(self.threads)
        self.net = cv2.dnn.readNetFromONNX(str(self.path), engine=getattr(cv2.dnn, self.engine))
        self.version = cv2.__version__

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        self.net.setInput(batch)
        return np.array(self.net.forward(), dtype=np.float32, copy=True).reshape(len(batch), -1)

    @property
    def description(self) -> str:
        return f"OpenCV {self.version} DNN ({self.engine}), {self.threads or 'default'} threads"


class OpenCvClassicRunner(OpenCvRunner):
    name = "opencv-classic"
    engine = "ENGINE_CLASSIC"

    @classmethod
    def known_problem(cls, record: dict, manifest: dict) -> str | None:
        import cv2

        if not cv2.__version__.startswith("5.0."):
            return None
        if manifest["family"] == "v1":
            return ("OpenCV 5.0's classic engine averages padded 3x3 pools (ShuffleNet V1's stride-2 shortcut) "
                    "wrongly, without an error")
        if manifest["input"]["img_size"] <= LAST_STAGE_STRIDE:
            return ("OpenCV 5.0's classic engine computes ShuffleNet V2 wrongly, without an error, when its "
                    f"last stage runs on a 1x1 map (inputs of {LAST_STAGE_STRIDE} px or less); export at a larger "
                    "--img-size")  # fmt: skip
        return None


BACKENDS = tuple(
    crosscheck_backend(runner, ONNX_FORMAT, f"OpenCV 5 DNN, {engine} engine: checks ONNX artifacts in another runtime",
                       "opencv-python-headless", color, order)
    for runner, engine, color, order in ((OpenCvRunner, "default", "tab:olive", 16),
                                         (OpenCvClassicRunner, "classic", "tab:brown", 17))
)  # fmt: skip
