"""``sdeploy doctor``: what this machine can export, run and build, and what to install for the rest.

Every backend and runtime comes from the registry; each is checked by
importing what it needs (a package that is installed but broken shows up
here, not half-way through an export).  The demo apps' toolchains are
checked by looking for their programs.
"""

from __future__ import annotations

import importlib
import io
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

from . import __version__
from .backends import app_names, backends, get_backend
from .errors import SdeployError, unknown_name_error
from .sysutil import captured_output

#: Node.js the web demo needs (its package.json "engines" says the same).
MIN_NODE = 20


@dataclass
class Check:
    kind: str  # target, runtime or app
    name: str
    usable: bool
    version: str | None = None
    install: str | None = None  # what to run to make it usable
    notes: list[str] = field(default_factory=list)


@dataclass
class DoctorReport:
    checks: list[Check]
    asked: list[str]  # "kind:name" the user asked about; empty: the core only

    @property
    def ok(self) -> bool:
        wanted = [c for c in self.checks if f"{c.kind}:{c.name}" in self.asked]
        return all(c.usable for c in wanted)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "sdeploy": __version__, "python": platform.python_version(), "platform": sys.platform,
                "asked": self.asked, "checks": [asdict(c) for c in self.checks]}  # fmt: skip


def doctor(targets: list[str] = (), runtimes: list[str] = (), apps: list[str] = ()) -> DoctorReport:
    """Check every backend, runtime and demo toolchain; the exit status covers only what was asked about."""
    asked = _asked(targets, runtimes, apps)
    checks = [*_backend_checks(), *(_app_check(app) for app in app_names())]
    return DoctorReport(checks, asked)


def _asked(targets, runtimes, apps) -> list[str]:
    asked = []
    for name in targets:
        asked.append(f"target:{get_backend(name).name}")
    known_runtimes = [b.runtime for b in backends() if b.runner]
    for name in runtimes:
        if name not in known_runtimes:
            raise unknown_name_error("runtime", name, known_runtimes, f"choose from {', '.join(known_runtimes)}")
        asked.append(f"runtime:{name}")
    for name in apps:
        if name not in app_names():
            raise unknown_name_error("app", name, app_names(), f"choose from {', '.join(app_names())}")
        asked.append(f"app:{name}")
    return asked


def _backend_checks() -> list[Check]:
    checks = []
    for backend in backends():
        install = f'pip install "shufflenet-deploy[{backend.extra}]"' if backend.extra else None
        version = _versions(backend.packages)
        if backend.target is not None:
            problem = _import_problem(backend.modules)
            checks.append(Check("target", backend.name, problem is None, version, install if problem else None,
                                [problem] if problem else []))  # fmt: skip
        problem = _import_problem(backend.runner.requires)
        notes = [problem] if problem else []
        if problem is None and backend.runner.platform_note():
            notes.append(backend.runner.platform_note())
        checks.append(Check("runtime", backend.runtime, problem is None, version, install if problem else None, notes))
    return checks


def _versions(packages: tuple[str, ...]) -> str | None:
    found = []
    for package in packages:
        try:
            found.append(f"{package} {importlib_metadata.version(package)}")
        except importlib_metadata.PackageNotFoundError:
            pass
    return ", ".join(found) or None


def _import_problem(modules: tuple[str, ...]) -> str | None:
    for module in modules:
        try:
            with captured_output(io.StringIO()):  # some packages print banners and warnings when imported
                importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001  (a broken install raises anything, not only ImportError)
            kind = "not installed" if isinstance(exc, ModuleNotFoundError) else f"fails to import ({type(exc).__name__})"
            return f"{module} {kind}"
    return None


# ---------------------------------------------------------------- demo toolchains


def _app_check(app: str) -> Check:
    return {"web": _web, "android": _android, "ios": _ios}.get(app, lambda: Check("app", app, True))()


def _web() -> Check:
    node = shutil.which("node")
    version = _program_version([node, "--version"]) if node else None
    major = int(re.match(r"v?(\d+)", version).group(1)) if version and re.match(r"v?(\d+)", version) else 0
    notes = []
    if major < MIN_NODE:
        notes.append(f"Node.js {MIN_NODE}+ needed for the web demo (found {version or 'none'})")
    if not Path("web_demo/node_modules/onnxruntime-web").is_dir():
        notes.append("web_demo/node_modules is missing: run 'npm ci' in web_demo (from the repository root)")
    if not _chromium():
        notes.append("no Chromium for the browser tests (Debian: apt-get install chromium)")
    usable = major >= MIN_NODE
    return Check("app", "web", usable, f"node {version}" if version else None,
                 None if usable else "install Node.js 20+ (see the README's install section)", notes)  # fmt: skip


def _android() -> Check:
    kotlinc, java = shutil.which("kotlinc"), shutil.which("java")
    notes = ["the APK build needs the Android SDK (ANDROID_HOME) and Google's Maven repository: Android Studio, or "
             "the Android job in .github/workflows/parity.yml"]  # fmt: skip
    usable = bool(kotlinc and java and Path("/usr/share/java/junit4.jar").exists())
    if not usable:
        notes.insert(0, "the Kotlin core's tests need kotlinc, java and junit4 (Debian: apt-get install kotlin junit4)")
    return Check("app", "android", usable, _program_version([kotlinc, "-version"], "kotlinc") if kotlinc else None,
                 None if usable else "apt-get install kotlin junit4", notes)  # fmt: skip


def _ios() -> Check:
    xcodebuild = shutil.which("xcodebuild")
    if sys.platform != "darwin" or not xcodebuild:
        return Check("app", "ios", False, None, "a Mac with Xcode 16+ and XcodeGen (brew install xcodegen)",
                     ["iOS builds and XCTests run only on macOS; here the iOS demo is checked statically"])  # fmt: skip
    return Check("app", "ios", True, _program_version([xcodebuild, "-version"]))


def _chromium() -> str | None:
    return next((path for path in ("/usr/bin/chromium", shutil.which("chromium") or "") if path and Path(path).exists()), None)


def _program_version(command: list[str], marker: str = "") -> str | None:
    """The first line of a program's version output (that contains ``marker``: JVM tools print warnings first)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if marker in line and line.strip()]
    return lines[0] if lines else None


def check_report(report: DoctorReport) -> None:
    if not report.ok:
        missing = [c for c in report.checks if f"{c.kind}:{c.name}" in report.asked and not c.usable]
        raise SdeployError("; ".join(f"{c.kind} {c.name} is not usable: {c.install or ', '.join(c.notes)}"
                                     for c in missing), exit_code=1)  # fmt: skip
