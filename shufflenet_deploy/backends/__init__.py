"""The backend registry: every module in this package that defines ``BACKEND`` (or ``BACKENDS``) is a backend.

Adding a backend is adding one module (see :mod:`.base` for what its record
declares).  Everything else asks this registry: the CLI's choices and option
groups, the manifest's tool versions, verify's runners, bench's variants and
colours, and bundle's app bindings.  Backend modules import their converters
and runtimes lazily, so discovering them is cheap and a missing package only
affects its own backend.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import lru_cache

from ..errors import SdeployError, unknown_name_error
from .base import (
    AppBinding,
    Artifact,
    Backend,
    ExportContext,
    Runner,
    RuntimeUnavailable,
    Target,
    TensorSpec,
)
from .options import COMMON_OPTIONS, ExportOptions, Option

ALL = "all"


@lru_cache(maxsize=1)
def backends() -> tuple[Backend, ...]:
    """Every registered backend, in display order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        records = getattr(module, "BACKENDS", None) or [getattr(module, "BACKEND", None)]
        found += [record for record in records if isinstance(record, Backend)]
    found.sort(key=lambda b: (b.order, b.name))
    _check_unique(found)
    return tuple(found)


def _check_unique(found: list[Backend]) -> None:
    names = [b.name for b in found] + [b.runtime for b in found if b.target and b.runtime and b.runtime != b.name]
    options = [o.name for o in COMMON_OPTIONS] + [o.name for b in found for o in b.options]
    for kind, values in (("backend/runtime name", names), ("export option", options)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise RuntimeError(f"two backends declare the same {kind}: {', '.join(repeated)}")


def target_backends() -> list[Backend]:
    return [b for b in backends() if b.target is not None]


def target_names() -> list[str]:
    return [b.name for b in target_backends()]


def calibrated_targets() -> list[str]:
    """Targets whose int8 needs calibration images (``--calib``)."""
    return [b.name for b in target_backends() if b.target.int8_calibrates]


def runtime_names() -> list[str]:
    return [b.runtime for b in backends() if b.runner is not None]


def get_backend(target: str) -> Backend:
    for backend in target_backends():
        if backend.name == target:
            return backend
    raise unknown_name_error("target", target, [*target_names(), ALL], f"choose from {', '.join([*target_names(), ALL])}")


def backend_for_runtime(runtime: str) -> Backend:
    for backend in backends():
        if backend.runtime == runtime:
            return backend
    raise unknown_name_error("runtime", runtime, runtime_names(), f"choose from {', '.join(runtime_names())}")


def check_runtime_name(name: str) -> None:
    backend_for_runtime(name)


def runner_class(runtime: str) -> type[Runner]:
    return backend_for_runtime(runtime).runner


def format_backend(fmt: str) -> Backend:
    """The backend that exports ``fmt``: its runner is the format's primary runtime."""
    for backend in target_backends():
        if backend.format == fmt:
            return backend
    raise SdeployError(f"no backend reads artifacts of format '{fmt}' (a newer sdeploy may; known: "
                       f"{', '.join(b.format for b in target_backends())})")  # fmt: skip


def runtime_for(record: dict) -> str:
    """The primary runtime of an artifact record."""
    return format_backend(record.get("format")).runtime


def crosscheck_runtimes(fmt: str) -> list[str]:
    """Second, independent runtimes of a format, which verify runs by default when installed."""
    return [b.runtime for b in backends() if b.target is None and b.format == fmt and b.crosscheck]


def runtimes_for_format(fmt: str) -> list[str]:
    return [b.runtime for b in backends() if b.format == fmt and b.runner is not None]


def all_options() -> tuple[Option, ...]:
    return COMMON_OPTIONS + tuple(o for b in target_backends() for o in b.options)


def option_owner(name: str) -> str | None:
    """The backend that declares an option, or None for a common one."""
    return next((b.name for b in target_backends() for o in b.options if o.name == name), None)


def parse_targets(values: str | Iterable[str]) -> list[str]:
    """Target names from repeated and/or comma-separated values; ``all`` means every target."""
    if isinstance(values, str):
        values = [values]
    names: list[str] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            names.extend(target_names() if name == ALL else [get_backend(name).name])
    if not names:
        raise SdeployError(f"no target given: pass --target with one of {', '.join([*target_names(), ALL])}")
    return list(dict.fromkeys(names))  # keep order, drop repeats


def app_bindings(app: str) -> dict[str, AppBinding]:
    """target name -> how ``app`` takes its artifacts, the app's default engine first."""
    bound = {b.name: b.apps[app] for b in target_backends() if app in b.apps}
    return dict(sorted(bound.items(), key=lambda item: not item[1].default))


def app_names() -> list[str]:
    return sorted({app for b in target_backends() for app in b.apps})


def recorded_packages() -> list[str]:
    return list(dict.fromkeys(p for b in backends() for p in b.packages))


__all__ = [
    "ALL", "AppBinding", "Artifact", "Backend", "ExportContext", "ExportOptions", "Option", "Runner",
    "RuntimeUnavailable", "Target", "TensorSpec", "all_options", "app_bindings", "app_names", "backend_for_runtime",
    "backends", "check_runtime_name", "crosscheck_runtimes", "format_backend", "get_backend", "option_owner",
    "parse_targets", "recorded_packages", "runner_class", "runtime_for", "runtime_names", "runtimes_for_format",
    "target_backends", "target_names",
]  # fmt: skip
