"""sdeploy bench and sdeploy profile: complete, self-consistent reports; no timing is asserted."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import TEST_IMG_SIZE, assert_one_line_error, run_cli
from PIL import Image

from shufflenet_deploy import load_model
from shufflenet_deploy.complexity import count_params, layer_costs
from shufflenet_deploy.errors import SdeployError
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.nets import get_arch
from shufflenet_deploy.perf.bench import EAGER, SCHEMA, bench, parse_threads, precision_variant
from shufflenet_deploy.perf.opprofile import KIND_LABELS, LAYER_KINDS, profile_arch
from shufflenet_deploy.perf.plot import plot_latency_vs_mflops

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THREADS = "1,all"
COMPUTE_KINDS = ("stem_conv", "conv1x1", "group_conv1x1", "depthwise_conv", "classifier")


@pytest.fixture(scope="module")
def export_dir(export_cache):
    # Every runtime, fp32; the same export test_bundle uses, so a full run exports it once.
    return export_cache("v2_x0_5", "all", precision="fp32")


@pytest.fixture(scope="module")
def report(export_dir):
    return bench([export_dir], runs=3, warmup=1, threads=THREADS, progress=False)


def all_rows(report):
    return [row for model in report.models for row in model.rows]


def test_every_artifact_is_benchmarked_at_every_thread_count(report, export_dir):
    manifest = read_manifest(export_dir)
    (model,) = report.models
    assert model.rows[0].key == EAGER
    assert sorted(row.key for row in model.rows[1:]) == sorted(manifest["artifacts"])
    assert report.threads == parse_threads(THREADS)
    for row in model.rows:
        assert row.status == "ok", (row.key, row.error)
        assert [t.threads for t in row.timings] == report.threads
    assert report.ok


def test_every_latency_sample_is_recorded(report):
    for row in all_rows(report):
        for t in row.timings:
            assert len(t.latency_samples_ms) == report.runs
            assert t.latency_min_ms == pytest.approx(min(t.latency_samples_ms), abs=1e-4)  # samples are rounded


def test_sizes_are_the_files_on_disk_and_the_state_dict_torch_saves(report, export_dir, tmp_path):
    manifest = read_manifest(export_dir)
    model = report.models[0]
    saved = tmp_path / "state_dict.pt"
    torch.save(load_model("v2_x0_5", "random").model.state_dict(), saved)
    assert model.state_dict_bytes == saved.stat().st_size
    for row in model.rows[1:]:
        files = [export_dir / entry["path"] for entry in manifest["artifacts"][row.key]["files"]]
        on_disk = sum(p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                      for p in files)  # fmt: skip
        assert row.size_bytes == on_disk


def test_params_mflops_and_mac_are_the_complexity_values(report):
    model = report.models[0]
    network = get_arch("v2_x0_5").build(1000)
    costs = layer_costs(network, TEST_IMG_SIZE)
    assert model.img_size == TEST_IMG_SIZE
    assert model.params == count_params(network) == get_arch("v2_x0_5").params
    assert model.mflops == pytest.approx(sum(c.macs for c in costs) / 1e6, rel=1e-12)
    assert model.mac_m == pytest.approx(sum(c.memory_access for c in costs) / 1e6, rel=1e-12)


def test_peak_memory_covers_at_least_the_weights(report):
    # Whatever a runtime does, a model in memory costs at least its weights (fp16 ones: half of them).
    model = report.models[0]
    for row in model.rows:
        share = 0.45 if row.precision == "fp16" else 0.9
        assert row.peak_memory_bytes >= share * model.state_dict_bytes, (row.key, row.peak_memory_bytes)


def test_fixed_batch_artifacts_run_sequential_calls_for_throughput(report):
    rows = {row.key: row for row in report.models[0].rows}
    assert rows[EAGER].batch_size is None and rows[EAGER].throughput_calls == 1
    assert rows["ncnn"].batch_size == 1 and rows["ncnn"].throughput_calls == report.batch == 8
    assert "8 sequential calls" in rows["ncnn"].throughput_mode


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="Core ML runs natively on macOS")
def test_the_core_ml_interpreter_is_flagged(report):
    rows = {row.key: row for row in report.models[0].rows}
    assert rows["coreml-fp32"].interpreter and "interpreter" in rows["coreml-fp32"].description
    assert not any(row.interpreter for key, row in rows.items() if key != "coreml-fp32")


def test_json_report_has_the_documented_schema(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["schema"] == SCHEMA and data["ok"] is True
    assert data["settings"]["threads"] == report.threads and data["settings"]["runs"] == 3
    assert {"latency_ratio", "throughput_ratio", "size_ratio", "memory_ratio", "peak_memory_bytes"} <= set(data["definitions"])
    (model,) = data["models"]
    assert {"arch", "img_size", "params", "mflops", "mac_m", "state_dict_bytes", "rows"} <= set(model)
    for row in model["rows"]:
        assert {"key", "runtime", "precision", "status", "size_bytes", "size_ratio", "peak_memory_bytes",
                "memory_ratio", "interpreter", "throughput_mode", "timings"} <= set(row)  # fmt: skip
        for timing in row["timings"]:
            assert {"threads", "latency_ms", "latency_p90_ms", "throughput_ips", "eager_latency_ms",
                    "latency_ratio", "latency_p90_ratio", "throughput_ratio"} <= set(timing)  # fmt: skip
            assert timing["latency_ratio"] == pytest.approx(timing["latency_ms"] / timing["eager_latency_ms"])


def assert_png(path):
    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_plot_is_a_png(report, tmp_path):
    path = plot_latency_vs_mflops(report, tmp_path / "bench.png")
    assert_png(path)


def test_cli_bench_filters_runtimes_and_writes_json_and_plot(export_dir, tmp_path):
    json_path, png = tmp_path / "bench.json", tmp_path / "bench.png"
    threads_before = torch.get_num_threads()
    result = run_cli("bench", export_dir, "--runtime", "onnxruntime", "--threads", "1", "--runs", "2", "--warmup", "0",
                     "--json", json_path, "--plot", png)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert torch.get_num_threads() == threads_before
    data = json.loads(json_path.read_text())
    rows = data["models"][0]["rows"]
    assert [r["key"] for r in rows] == [EAGER, "onnx"]
    assert [t["threads"] for t in rows[1]["timings"]] == [1]
    table = result.stdout
    assert "eager PyTorch" in table and "onnxruntime" in table and "torchscript" not in table
    assert "lat x" in table and "ratio to eager" in table
    assert "[2/2] v2_x0_5 onnx" in result.stderr  # progress goes to stderr
    assert_png(png)


def test_cli_table_flags_the_interpreter(report):
    from shufflenet_deploy.cli.bench import format_bench_report

    text = format_bench_report(report)
    assert "coreml (interpreter)" in text and "a stand-in interpreter, so its speed is not the real runtime's" in text
    assert "8 sequential calls" in text


# ---------------------------------------------------------------- settings and errors


def test_parse_threads():
    cores = os.cpu_count()
    assert parse_threads("1,all") == list(dict.fromkeys([1, cores]))
    assert parse_threads("2, 2,1") == [2, 1]
    assert parse_threads([1, "all"]) == parse_threads("1,all")
    for bad in ("0", "two", "1,,2", "-1", ""):
        with pytest.raises(SdeployError, match="--threads"):
            parse_threads(bad)


def test_precision_variants_come_from_each_backend():
    assert precision_variant("int8", ["onnx", "torchscript", "ncnn"]) == (["onnx"], {"quantize": "int8"})
    assert precision_variant("fp16", ["onnx", "coreml"]) == (["onnx", "coreml"], {"half": True, "precision": "fp16"})
    with pytest.raises(SdeployError, match="none of torchscript offers --precision fp16"):
        precision_variant("fp16", ["torchscript"])
    with pytest.raises(SdeployError, match="unknown precision"):
        precision_variant("fp8", ["onnx"])


def test_cli_errors_are_one_line(tmp_path, export_dir):
    assert_one_line_error(run_cli("bench", tmp_path / "missing"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("bench", tmp_path / "empty"), "no sdeploy.json")
    assert_one_line_error(run_cli("bench", "--arch", "v2_x0_7"), "unknown architecture 'v2_x0_7'", "v2_x0_5")
    assert_one_line_error(run_cli("bench", export_dir, "--threads", "1,two"), "--threads", "'two'")
    assert_one_line_error(run_cli("bench", export_dir, "--threads", "0"), "--threads")
    assert_one_line_error(run_cli("bench", export_dir, "--arch", "v2_x0_5"), "not both")
    assert_one_line_error(run_cli("bench"), "export directories or --arch")
    assert_one_line_error(run_cli("bench", export_dir, "--img-size", "64"), "with --arch only")
    assert_one_line_error(run_cli("bench", export_dir, "--weights", "none"), "with --arch only")
    assert_one_line_error(run_cli("bench", export_dir, "--runs", "0"), "--runs")
    assert_one_line_error(run_cli("bench", "--arch", "v2_x0_5", "--precision", "fp8"), "unknown precision 'fp8'")
    assert_one_line_error(run_cli("bench", "--arch", "v2_x0_5", "--calib", tmp_path), "--calib", "--precision int8")
    assert_one_line_error(run_cli("bench", export_dir, "--runtime", "tensorrt"), "tensorrt")
    assert_one_line_error(run_cli("profile", "v3_x1_0"), "unknown architecture 'v3_x1_0'")
    assert_one_line_error(run_cli("profile", "v2_x0_5", "--img-size", "16"), "'--img-size': 16 is not in the range 32<=x")


def test_cli_runtime_filter_can_leave_nothing(export_dir):
    if os.uname().sysname == "Darwin":
        pytest.skip("Core ML runs natively on macOS")
    result = run_cli("bench", export_dir, "--runtime", "coreml", "--skip-interpreter")
    assert_one_line_error(result, "no artifact left")


@pytest.mark.slow
def test_cli_bench_exports_fp32_and_fp16_first(tmp_path):
    result = run_cli("bench", "--arch", "v2_x0_5", "--target", "onnx", "--half", "--dynamic-batch", "--img-size", "64",
                     "--threads", "1", "--runs", "2", "--warmup", "0", "--out", tmp_path, "--json", "-", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    rows = data["models"][0]["rows"]
    assert [(r["key"], r["precision"]) for r in rows] == [(EAGER, "fp32"), ("onnx", "fp32"), ("onnx-fp16", "fp16")]
    assert rows[2]["size_bytes"] < rows[1]["size_bytes"]
    # A dynamic batch runs the throughput batch in one call, like eager PyTorch.
    assert all(r["batch_size"] is None and r["throughput_calls"] == 1 for r in rows)
    assert (tmp_path / "v2_x0_5" / "sdeploy.json").is_file()


@pytest.mark.slow
def test_cli_bench_int8_variant_calibrates_with_the_given_images(tmp_path, gray_image):
    result = run_cli("bench", "--arch", "v2_x0_5", "--target", "onnx", "--precision", "int8", "--calib",
                     Path(gray_image).parent, "--img-size", "64", "--threads", "1", "--runs", "1", "--warmup", "0",
                     "--json", "-", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["models"][0]["rows"]
    assert [(r["key"], r["precision"], r["status"]) for r in rows] == [(EAGER, "fp32", "ok"), ("onnx-int8", "int8", "ok")]
    assert rows[1]["size_ratio"] < 0.5


# ---------------------------------------------------------------- profile


@pytest.fixture(scope="module")
def profiles():
    # Weights do not change the graph or the op kinds; "none" skips the random-weight calibration.
    return {arch: profile_arch(arch, img_size=TEST_IMG_SIZE, runs=3, warmup=1, weights="none", progress=False)
            for arch in ("v1_g8_x0_5", "v2_x0_5")}  # fmt: skip


@pytest.mark.parametrize("arch", ["v1_g8_x0_5", "v2_x0_5"])
def test_profile_shares_add_up_to_100(profiles, arch):
    profile = profiles[arch]
    assert [k.kind for k in profile.kinds] == list(KIND_LABELS)
    for share in ("time_share", "flops_share", "mac_share"):
        assert sum(getattr(k, share) for k in profile.kinds) == pytest.approx(100.0, abs=0.5)
    assert profile.node_ms == pytest.approx(sum(k.ms for k in profile.kinds))
    assert profile.run_ms > 0 and profile.default_run_ms > 0


@pytest.mark.parametrize("arch", ["v1_g8_x0_5", "v2_x0_5"])
def test_profile_flops_are_exactly_the_complexity_flops(profiles, arch):
    profile = profiles[arch]
    costs = layer_costs(get_arch(arch).build(1000), TEST_IMG_SIZE)
    expected = Counter()
    for cost in costs:
        expected[LAYER_KINDS[cost.kind]] += cost.macs
    for kind in profile.kinds:
        assert kind.mflops * 1e6 == pytest.approx(expected[kind.kind], abs=1e-6)
    assert sum(profile.kind(k).mflops for k in COMPUTE_KINDS) == pytest.approx(sum(c.macs for c in costs) / 1e6)
    assert profile.mflops == pytest.approx(sum(c.macs for c in costs) / 1e6)
    for kind in ("shuffle", "pooling", "other"):
        assert profile.kind(kind).mflops == 0 and profile.kind(kind).mac_m > 0


@pytest.mark.parametrize("arch", ["v1_g8_x0_5", "v2_x0_5"])
def test_profile_classifies_every_conv_like_complexity_does(profiles, arch):
    profile = profiles[arch]
    layers = Counter(LAYER_KINDS[c.kind] for c in layer_costs(get_arch(arch).build(1000), TEST_IMG_SIZE))
    for kind in ("stem_conv", "conv1x1", "group_conv1x1", "depthwise_conv"):
        assert profile.kind(kind).nodes == layers[kind], kind


def test_v1_g8_spends_time_in_grouped_1x1_convs_and_v2_has_none(profiles):
    v1, v2 = profiles["v1_g8_x0_5"], profiles["v2_x0_5"]
    assert v1.kind("group_conv1x1").nodes > 0 and v1.kind("group_conv1x1").ms > 0
    assert v1.kind("group_conv1x1").flops_share > 50
    assert v2.kind("group_conv1x1").nodes == 0 and v2.kind("group_conv1x1").ms == 0
    assert v2.kind("shuffle").ms > 0 and v2.kind("depthwise_conv").ms > 0


def test_cli_profile_compares_side_by_side():
    result = run_cli("profile", "v1_g8_x0_5", "--compare", "v2_x0_5", "--img-size", "64", "--runs", "2", "--warmup", "0",
                     "--weights", "none", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "v1_g8_x0_5" in line and "v2_x0_5" in line)
    assert header.index("v1_g8_x0_5") < header.index("v2_x0_5")
    rows = {label: line[len(label):].split() for line in lines for label in KIND_LABELS.values() if line.startswith(label)}
    assert sorted(rows) == sorted(KIND_LABELS.values()) and all(len(cells) == 8 for cells in rows.values())
    assert float(rows["1x1 conv, grouped"][0]) > 0 and float(rows["1x1 conv, grouped"][4]) == 0
    assert any(line.startswith("total") for line in lines)


def test_cli_profile_json():
    result = run_cli("profile", "v2_x0_5", "--img-size", "64", "--runs", "1", "--warmup", "0", "--weights", "none",
                     "--json", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (data,) = json.loads(result.stdout)
    assert data["arch"] == "v2_x0_5" and data["optimization"] == "ORT_ENABLE_BASIC"
    assert math.isclose(sum(k["time_share"] for k in data["kinds"]), 100.0, abs_tol=0.5)
