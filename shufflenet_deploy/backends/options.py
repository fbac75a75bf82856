"""Export options: declared once, next to the backend that reads them; the CLI and the Python API are built from them.

Options every backend may honour (batch size, precision, metadata...) are
declared here as :data:`COMMON_OPTIONS`; each backend module declares its own
in its :class:`~.base.Backend` record.  :class:`ExportOptions` holds the
values of all of them, checked against their declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SdeployError, unknown_name_error

QUANTIZE_CHOICES = ("none", "int8")
LAYOUTS = ("nchw", "nhwc")
#: Enough images for stable min/max ranges; more mostly costs export time.
DEFAULT_CALIB_SAMPLES = 256
MAX_BATCH = 4096


@dataclass(frozen=True)
class Option:
    """One export option: its Python name (``min_ios``), type, default, help, and how to check a value."""

    name: str
    type: type  # bool (a flag), int, float, str or Path
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    #: Extra check once every value is known: ``check(value, options)`` raises SdeployError.
    check: Callable[[Any, ExportOptions], None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def validate(self, value: Any, options: ExportOptions) -> None:
        if value is None or value == self.default:
            pass
        elif self.type is bool and not isinstance(value, bool):
            raise SdeployError(f"{self.flag} is a flag (true or false), got {value!r}")
        elif self.type is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise SdeployError(f"{self.flag} must be a whole number, got {value!r}")
        elif self.choices and value not in self.choices:
            raise SdeployError(f"{self.flag} must be one of {', '.join(self.choices)}, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool):
            self._check_range(value)
        if self.check is not None:
            self.check(value, options)

    def _check_range(self, value: int) -> None:
        if self.minimum is not None and value < self.minimum:
            raise SdeployError(f"{self.flag} must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise SdeployError(f"{self.flag} must be at most {self.maximum}, got {value}")


def _check_quantization(quantize: str, options: ExportOptions) -> None:
    if quantize != "int8":
        if options.calib is not None:
            raise SdeployError("--calib is only used with --quantize int8; add --quantize int8 or drop --calib")
        return
    if options.half:
        raise SdeployError("--half and --quantize int8 exclude each other: choose fp16 or int8")
    if options.calib is not None:
        from .calibration import calibration_images

        calibration_images(options.calib)  # fail before the model is built, not after


COMMON_OPTIONS = (
    Option("batch", int, 1, "Batch size of the exported input.", minimum=1, maximum=MAX_BATCH),
    Option("dynamic_batch", bool, False, "Any batch size at run time, where the format allows it."),
    Option("half", bool, False, "fp16 weights where the format supports it; fp32 inputs and outputs."),
    Option("quantize", str, "none", "int8: also write int8 artifacts where the format supports them (see --calib).",
           choices=QUANTIZE_CHOICES, check=_check_quantization),
    Option("calib", Path, None, "Calibration images for --quantize int8: typical inputs in any folder tree "
           "(a few hundred).", metavar="DIR"),
    Option("calib_samples", int, DEFAULT_CALIB_SAMPLES, "Use at most this many --calib images, spread evenly over "
           "the sorted folder tree.", minimum=1),
    Option("embed_preprocess", bool, False, "Take 8-bit RGB pixels (resized and centre-cropped by the app) and do the "
           "scaling, colour order and mean/std inside the model; NHWC unless --layout nchw. Key and files get -u8."),
    Option("layout", str, None, "Input layout: nchw (default for float input) or nhwc (default with "
           "--embed-preprocess; what Android bitmaps and web ImageData hold).", choices=LAYOUTS),
    Option("softmax", bool, False, "Output probabilities (softmax inside the model) instead of logits."),
    Option("author", str, "shufflenet-deploy", "Author written into artifact metadata."),
    Option("license", str, None, "License written into artifact metadata (default: the weights')."),
)  # fmt: skip


class ExportOptions:
    """The value of every declared export option; unknown names and bad values are one clear error."""

    def __init__(self, declared: Iterable[Option] | None = None, **values: Any):
        if declared is None:
            from . import all_options

            declared = all_options()
        self._declared = {option.name: option for option in declared}
        for name in values:
            if name not in self._declared:
                raise unknown_name_error("export option", name, self._declared, "see 'sdeploy export --help'")
        self._values = {name: values.get(name, option.default) for name, option in self._declared.items()}

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if v != self._declared[k].default}
        return f"ExportOptions({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @property
    def int8(self) -> bool:
        return self.quantize == "int8"

    def replace(self, **changes: Any) -> ExportOptions:
        return ExportOptions(self._declared.values(), **{**self._values, **changes})

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self._values.items()}

    def validate(self) -> None:
        for name, option in self._declared.items():
            option.validate(self._values[name], self)
