"""Core ML: coremltools' native prediction on macOS, sdeploy's NumPy interpreter elsewhere.

Core ML itself only runs on macOS.  On Linux the saved ML Program is executed
op by op by :mod:`.coreml_mil`, so the parity gate still holds in Linux CI;
``description`` always says which of the two ran.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from ...modelio import main_output
from ...preprocess import denormalize
from ..base import Runner

# Importing coremltools on Linux logs that its native (macOS-only) modules and untested
# torch/scikit-learn versions are missing; the report already says which runner ran.
if logging.getLogger("coremltools").level == logging.NOTSET:
    logging.getLogger("coremltools").setLevel(logging.ERROR)


def native_coreml_available() -> bool:
    if sys.platform != "darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401  (only built on macOS)
    except ImportError:
        return False
    return True


class CoreMLRunner(Runner):
    name = "coreml"
    requires = ("coremltools",)
    extra = "coreml"

    @classmethod
    def is_interpreter(cls) -> bool:
        return not native_coreml_available()

    @classmethod
    def platform_note(cls) -> str | None:
        if cls.is_interpreter():
            return ("Core ML itself runs only on macOS; here sdeploy's NumPy ML Program interpreter runs .mlpackage "
                    "files: right results, not Core ML's speed")
        return None

    def load(self) -> None:
        self.input = self.record["inputs"][0]
        self.output = main_output(self.record)["name"]
        self.native = native_coreml_available()
        if self.native:
            import coremltools as ct

            self.model = ct.models.MLModel(str(self.path), compute_units=ct.ComputeUnit.ALL)
        else:
            from .mil import MilProgram

            self.model = MilProgram.load(self.path)

    def run_fixed(self, batch: np.ndarray) -> np.ndarray:
        if self.input["kind"] == "image":
            # The image input takes 8-bit pixels; callers' inputs come from 8-bit images, so this is exact.
            pixels = np.clip(np.rint(denormalize(batch, self.contract)), 0, 255).astype(np.float32)
            return self._predict_images(pixels)
        return self._predict({self.input["name"]: batch})

    def _predict_images(self, pixels: np.ndarray) -> np.ndarray:
        if not self.native:
            return self._predict({self.input["name"]: pixels})
        from PIL import Image

        rows = []
        for image in pixels:
            hwc = image.transpose(1, 2, 0).astype(np.uint8)
            # Core ML reorders an RGB picture into the model's BGR layout itself.
            rgb = hwc[..., ::-1] if self.contract.color_order == "BGR" else hwc
            rows.append(self.model.predict({self.input["name"]: Image.fromarray(np.ascontiguousarray(rgb))})[self.output])
        return np.concatenate([np.asarray(r, np.float32).reshape(1, -1) for r in rows])

    def _predict(self, feeds: dict) -> np.ndarray:
        if self.native:
            return np.asarray(self.model.predict(feeds)[self.output], dtype=np.float32)
        return np.asarray(self.model.run(feeds)[self.output], dtype=np.float32)

    @property
    def description(self) -> str:
        if self.native:
            return "Core ML (native, macOS, compute units ALL)"
        return "Core ML ML Program run by sdeploy's NumPy interpreter (Core ML itself runs only on macOS)"
