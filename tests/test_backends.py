"""The contract every registered backend keeps, checked for each one the registry finds.

A new backend module gets these tests without listing it anywhere: it
exports a small network, its files are the ones its record promises, its
runtime passes ``verify``, ``bench`` runs it, and every demo app that takes
its format can bundle it.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from shufflenet_deploy.apps.bundle import bundle
from shufflenet_deploy.backends import (
    ExportOptions,
    all_options,
    app_names,
    backends,
    get_backend,
    runtime_names,
    target_backends,
    target_names,
)
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.perf.bench import bench
from shufflenet_deploy.verify import verify

TARGETS = target_names()


def test_the_registry_finds_backends_with_unique_names_and_options():
    assert TARGETS, "no backend registered"
    assert len(set(runtime_names())) == len(runtime_names())
    names = [o.name for o in all_options()]
    assert len(set(names)) == len(names)
    for backend in backends():
        assert backend.summary and backend.format and backend.runner is not None, backend.name
        assert backend.runner.name == backend.runtime
    for backend in target_backends():
        assert backend.target.name == backend.name and backend.target.suffixes and backend.files
        assert backend.extra or not backend.modules, f"{backend.name} needs modules but names no pip extra"
        assert "fp32" in backend.bench_variants


@pytest.mark.parametrize("target", TARGETS)
def test_file_names_and_keys_follow_the_record(target):
    backend = get_backend(target)
    options = ExportOptions()
    names = backend.target.file_names("v2_x0_5", options)
    assert [n.removeprefix("v2_x0_5") for n in names] == list(backend.target.suffixes)
    assert backend.target.key(options) == target
    # Each precision variant sits beside the others: its own manifest key and its own files.
    variants = [options.replace(**variant) for variant in backend.bench_variants.values()]
    assert len({backend.target.key(v) for v in variants}) == len(variants)
    assert len({backend.target.file_names("v2_x0_5", v)[0] for v in variants}) == len(variants)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_every_backend_exports_verifies_benches_and_bundles(target, export_cache, tmp_path):
    export_dir = export_cache("v2_x0_5", target)
    manifest = read_manifest(export_dir)
    backend = get_backend(target)
    (key, record), = manifest["artifacts"].items()
    assert key == target and record["target"] == target and record["format"] == backend.format
    assert [f["path"] for f in record["files"]] == backend.target.file_names("v2_x0_5", ExportOptions())
    assert all((export_dir / f["path"]).exists() for f in record["files"])
    assert all(manifest["versions"][package] for package in backend.packages)

    report = verify(export_dir, samples=3, progress=False)
    assert report.passed, [(r.runtime, r.status, r.error, r.reason) for r in report.runtimes]
    assert report.runtimes[0].runtime == backend.runtime

    timing = bench([export_dir], runs=2, warmup=1, threads="1", batch=2, progress=False)
    rows = {row.key: row for row in timing.models[0].rows}
    assert rows[key].status == "ok", rows[key].error
    assert rows[key].runtime == backend.runtime and rows[key].timings[0].latency_ms > 0

    for app in backend.apps:
        bundled = bundle(app, export_dir, tmp_path / app, target=target)
        assert bundled.model_json["target"] == target and bundled.model_json["sha256"] == record["sha256"]
        assert (tmp_path / app / backend.apps[app].model_file).exists()
        selftest = json.loads((tmp_path / app / "selftest.json").read_text())
        assert selftest["sha256"] == record["sha256"] and len(selftest["images"]) >= 3


def test_help_lists_every_target_runtime_and_app():
    export_help = run_cli("export", "--help").stdout
    verify_help = run_cli("verify", "--help").stdout
    bench_help = run_cli("bench", "--help").stdout
    bundle_help = run_cli("bundle", "--help").stdout
    for target in TARGETS:
        assert target in export_help and target in bench_help
    for runtime in runtime_names():
        assert runtime in verify_help and runtime in bench_help
    for app in app_names():
        assert app in bundle_help
