"""A pure-NumPy interpreter for saved Core ML ML Programs (``.mlpackage``).

Core ML itself only runs on macOS; this runs the same program on any OS so
that Core ML exports can be checked numerically in Linux CI::

    program = MilProgram.load("model.mlpackage")
    outputs = program.run({"image": pixels})  # float32 NCHW, raw 0..255 for an image input

Only the ops sdeploy's exports contain are implemented
(:data:`.ops.RUNTIME_OPS` and :data:`.ops.CONSTEXPR_OPS`); any other op is
refused with :class:`UnsupportedOpError` when the program is loaded.
"""

from .program import ImageInput, MilProgram, UnsupportedOpError

__all__ = ["ImageInput", "MilProgram", "UnsupportedOpError"]
