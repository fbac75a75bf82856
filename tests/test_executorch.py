"""sdeploy export --target executorch: file names, the Android AAR version, the export-time forms XNNPACK takes
whole (every arch), parity per arch and precision, dynamic batch, pixel input, metadata read back, threads,
verify --locate, int8 and fp16 accuracy on the digits model."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from importlib import metadata as importlib_metadata

import numpy as np
import pytest
import torch
from conftest import (
    REPO,
    TEST_IMG_SIZE,
    assert_one_line_error,
    assert_verifies_in_one_xnnpack_partition,
    faulty_exporter,
    run_cli,
)
from digits_data import DIGITS_CHECKPOINT, INT8_MAX_EXTRA_ERRORS, recorded_heldout, write_digits

from shufflenet_deploy import export, load_model
from shufflenet_deploy.backends import ExportOptions, get_backend
from shufflenet_deploy.backends.executorch import ANDROID_AAR_VERSION, release
from shufflenet_deploy.backends.executorch.delegable import delegable
from shufflenet_deploy.backends.executorch.target import call_nodes, dynamic_shapes, op_name
from shufflenet_deploy.errors import SdeployError
from shufflenet_deploy.manifest import manifest_contract, read_manifest
from shufflenet_deploy.modelio import ModelIO, adapt
from shufflenet_deploy.nets import list_models
from shufflenet_deploy.nets.common import Truncated
from shufflenet_deploy.verify import verify

BACKEND = get_backend("executorch")
TARGET = BACKEND.target
#: Their fp32 exports must pass verify's fp32 rule (max abs error within 1e-4 of the logit range).
PARITY_ARCHS = ["v2_x0_5", "v2_x1_0", "v1_g3_x1_0", "v1_g8_x1_0"]
CAST = "dim_order_ops._to_dim_order_copy.default"


def only_record(export_dir) -> tuple[dict, dict]:
    manifest = read_manifest(export_dir)
    (record,) = manifest["artifacts"].values()
    return manifest, record


# ---------------------------------------------------------------- record, options, the Android app (no export)


@pytest.mark.parametrize("options, key, file", [
    ({}, "executorch", "v2_x0_5.pte"),
    ({"half": True}, "executorch-fp16", "v2_x0_5-fp16.pte"),
    ({"quantize": "int8"}, "executorch-int8", "v2_x0_5-int8.pte"),
    ({"dynamic_batch": True}, "executorch", "v2_x0_5.pte"),
    ({"embed_preprocess": True, "softmax": True}, "executorch-u8-softmax", "v2_x0_5-u8-softmax.pte"),
    ({"layout": "nhwc", "half": True}, "executorch-nhwc-fp16", "v2_x0_5-nhwc-fp16.pte"),
])  # fmt: skip
def test_keys_and_file_names(options, key, file):
    export_options = ExportOptions(**options)
    assert TARGET.unavailable(export_options) is None
    assert TARGET.key(export_options) == key and TARGET.file_names("v2_x0_5", export_options) == [file]


def test_the_max_batch_option_is_checked():
    with pytest.raises(SdeployError, match="--pte-max-batch must be at least 2, got 1"):
        ExportOptions(pte_max_batch=1).validate()
    shapes = dynamic_shapes(ExportOptions(dynamic_batch=True, batch=16))
    assert shapes[0][0].max == 16  # never below --batch
    assert dynamic_shapes(ExportOptions()) is None


def test_the_android_demo_pins_the_aar_version_the_exporter_needs():
    gradle = (REPO / "android_demo" / "app" / "build.gradle.kts").read_text()
    assert re.findall(r'"org\.pytorch:executorch-android:([^"]+)"', gradle) == [ANDROID_AAR_VERSION]
    engine = REPO / "android_demo/app/src/executorch/java/dev/sdeploy/demo/engines/ExecuTorchEngine.kt"
    assert f'"executorch-android {ANDROID_AAR_VERSION}"' in engine.read_text()
    # Exports made here must load in the app: the installed exporter is not newer than its runtime.
    assert release(importlib_metadata.version("executorch")) <= release(ANDROID_AAR_VERSION)
    binding = BACKEND.apps["android"]
    assert binding.default and binding.model_file == "model.pte"


@pytest.mark.parametrize("exporter, batch, fragment", [
    ("1.5.1", 1, None),
    ("1.5.1+cpu", "batch", None),
    ("1.4.0", 1, None),
    ("1.5.2", 1, "exported by executorch 1.5.2, newer than the Android app's runtime (executorch-android 1.5.1)"),
    ("2.0.0", 1, 'pip install "executorch==1.5.1"'),
    (None, 1, "records no executorch version"),
    ("1.5.1", 4, "re-export executorch with --batch 1"),
])  # fmt: skip
def test_the_android_check_refuses_newer_exporters_and_batches(exporter, batch, fragment):
    details = {} if exporter is None else {"executorch_version": exporter}
    record = {"details": details, "inputs": [{"shape": [batch, 3, TEST_IMG_SIZE, TEST_IMG_SIZE]}]}
    check = BACKEND.apps["android"].check
    if fragment is None:
        check(record)
    else:
        with pytest.raises(SdeployError, match=re.escape(fragment)):
            check(record)


# ---------------------------------------------------------------- export-time forms (no file)


def xnnpack_decisions(module: torch.nn.Module, example: torch.Tensor, dynamic=None) -> tuple[int, Counter]:
    """(partitions, ops left outside) as executorch's XNNPACK partitioner decides them in a real export.

    The export stops once the partitioner has decided, so nothing is lowered: the same decisions at
    a fraction of the cost of an export (XNNPACK's preprocessing and payloads are most of it).
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    class Decided(Exception):
        pass

    class Counting(XnnpackPartitioner):
        def partition(self, program):
            result = super().partition(program)
            calls = call_nodes(result.tagged_exported_program.graph)
            self.decisions = (len(result.partition_tags),
                              Counter(op_name(n.target) for n in calls if "delegation_tag" not in n.meta))  # fmt: skip
            raise Decided

    partitioner = Counting()
    with pytest.raises(Decided):
        to_edge_transform_and_lower(torch.export.export(module.eval(), (example,), dynamic_shapes=dynamic),
                                    partitioner=[partitioner])  # fmt: skip
    return partitioner.decisions


def test_the_forms_are_exact_for_parts_and_pixels_and_leave_the_model_alone():
    loaded = load_model("v2_x0_5", "random", img_size=TEST_IMG_SIZE)
    network = loaded.model.eval()
    before = {name: type(module) for name, module in network.named_modules()}
    inputs = torch.randn(2, 3, TEST_IMG_SIZE, TEST_IMG_SIZE)
    part = Truncated(network, 5).eval()  # verify --locate exports prefixes of the network
    pixels = adapt(network, loaded.weights.contract, ModelIO(kind="pixels", layout="NHWC", probabilities=True))
    images = torch.randint(0, 256, (2, TEST_IMG_SIZE, TEST_IMG_SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(delegable(part)(inputs), part(inputs))
        assert torch.equal(delegable(pixels)(images), pixels(images))
        half = delegable(network, half=True)(inputs)
    assert half.dtype == torch.float32  # fp16 inside, fp32 I/O
    assert {name: type(module) for name, module in network.named_modules()} == before
    assert all(p.dtype == torch.float32 for p in network.parameters())


def test_the_bgr_flip_of_official_v1_pixels_folds_into_the_stem():
    loaded = load_model("v1_g3_x0_5", "random", img_size=TEST_IMG_SIZE)
    assert loaded.weights.contract.color_order == "BGR"
    pixels = adapt(loaded.model.eval(), loaded.weights.contract, ModelIO(kind="pixels", layout="NCHW"))
    images = torch.randint(0, 256, (2, 3, TEST_IMG_SIZE, TEST_IMG_SIZE), dtype=torch.uint8)
    forms = delegable(pixels)
    with torch.no_grad():
        expected, actual = pixels(images), forms(images)
    # The stem sums its input channels in another order: equal up to float rounding.
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))
    assert pixels.bgr and not any(getattr(m, "bgr", False) for m in forms.modules())


@pytest.mark.slow
@pytest.mark.parametrize("arch", list_models())
def test_every_arch_is_exact_and_goes_to_xnnpack_whole(arch):
    network = load_model(arch, "random", img_size=TEST_IMG_SIZE).model.eval()
    forms = delegable(network).eval()
    inputs = torch.randn(1, 3, TEST_IMG_SIZE, TEST_IMG_SIZE)
    with torch.no_grad():
        assert torch.equal(forms(inputs), network(inputs))
    assert xnnpack_decisions(forms, inputs) == (1, Counter())


@pytest.mark.slow
def test_v1_keeps_one_partition_with_a_dynamic_batch_and_bgr_pixels():
    loaded = load_model("v1_g3_x0_5", "random", img_size=TEST_IMG_SIZE)
    forms = delegable(loaded.model.eval())
    dynamic = dynamic_shapes(ExportOptions(dynamic_batch=True))
    assert xnnpack_decisions(forms, torch.randn(2, 3, TEST_IMG_SIZE, TEST_IMG_SIZE), dynamic) == (1, Counter())
    pixels = adapt(loaded.model.eval(), loaded.weights.contract, ModelIO(kind="pixels", layout="NHWC"))
    images = torch.zeros(1, TEST_IMG_SIZE, TEST_IMG_SIZE, 3, dtype=torch.uint8)
    assert xnnpack_decisions(delegable(pixels), images) == (1, Counter({CAST: 1}))  # uint8 -> float only


# ---------------------------------------------------------------- fp32 exports


@pytest.mark.slow
@pytest.mark.parametrize("arch", PARITY_ARCHS)
def test_fp32_parity(arch, export_cache):
    export_dir = export_cache(arch, "executorch")
    _, record = only_record(export_dir)
    details = record["details"]
    assert record["path"] == f"{arch}.pte" and record["precision"] == "fp32"
    assert details["fully_delegated"] and details["xnnpack_partitions"] == 1 and details["non_delegated_nodes"] == 0
    assert details["delegated_nodes"] > 150 and details["dynamic_batch"] is False
    report = assert_verifies_in_one_xnnpack_partition(export_dir, samples=4, runtime="executorch")
    assert report.runtimes[0].tolerance_rule.startswith("fp32")


@pytest.mark.slow
def test_fp32_parity_at_224(export_cache):
    export_dir = export_cache("v2_x0_5", "executorch", img_size=224)
    assert_verifies_in_one_xnnpack_partition(export_dir, runtime="executorch", samples=2)


@pytest.mark.slow
def test_the_manifest_records_versions_and_the_metadata_reads_back(export_cache):
    from shufflenet_deploy.backends.executorch.runner import METADATA_METHOD, load_program, read_metadata

    export_dir = export_cache("v2_x0_5", "executorch")
    manifest, record = only_record(export_dir)
    details = record["details"]
    assert details["executorch_version"] == importlib_metadata.version("executorch") == manifest["versions"]["executorch"]
    assert details["pte_file_identifier"] == "ET12" and details["metadata_methods"] == [METADATA_METHOD]
    path = export_dir / record["path"]
    assert load_program(path).method_names == {"forward", METADATA_METHOD}
    metadata = read_metadata(path)
    assert metadata["arch"] == "v2_x0_5" and metadata["sdeploy_version"] == manifest["versions"]["sdeploy"]
    assert json.loads(metadata["input_contract"]) == manifest["input"]
    assert json.loads(metadata["labels"]) == (export_dir / "labels.txt").read_text().splitlines()


@pytest.mark.slow
def test_runners_with_other_thread_counts_take_turns(export_cache):
    """Each resize of ExecuTorch's one thread pool makes the other runners reload before they run again."""
    from shufflenet_deploy.backends.executorch.runner import ExecuTorchRunner

    export_dir = export_cache("v2_x0_5", "executorch")
    manifest, record = only_record(export_dir)
    contract = manifest_contract(manifest)
    inputs = np.random.default_rng(0).standard_normal((3, 3, TEST_IMG_SIZE, TEST_IMG_SIZE), dtype=np.float32)
    one, two = (ExecuTorchRunner(export_dir, record, contract, threads) for threads in (1, 2))
    expected = one.run(inputs)
    for _ in range(20):
        np.testing.assert_array_equal(two.run(inputs), expected)
        np.testing.assert_array_equal(one.run(inputs), expected)
    assert one.description.endswith("XNNPACK (1 partition), 1 thread") and two.description.endswith("2 threads")


@pytest.mark.slow
def test_locate_reexports_parts_through_the_target(export_cache):
    report = verify(export_cache("v2_x0_5", "executorch"), samples=2, locate=True, progress=False)
    (result,) = report.runtimes
    assert result.status == "pass" and result.locate is not None and "error" not in result.locate, result.locate
    assert result.first_divergent_unit is None and result.locate["probes"]


@pytest.mark.slow
def test_a_real_defect_in_an_fp16_pte_fails_despite_the_wider_fp16_rule(tmp_path, monkeypatch):
    """ExecuTorch's fp16 may be 12x the floor (96x its cosine gap); one layer scaled by 1.3 must still fail."""
    out = tmp_path / "export"
    assert export("v2_x0_5", "executorch", weights="random", half=True, out=out, progress=False).ok
    sound = verify(out, samples=8, locate=False, progress=False)
    assert sound.passed and sound.runtimes[0].tolerance_rule.startswith("fp16: 12x the measured fp16 floor")
    faulty_exporter("executorch", "stage3.2", monkeypatch)
    faulty = tmp_path / "faulty"
    assert export("v2_x0_5", "executorch", weights="random", half=True, out=faulty, progress=False).ok
    (row,) = verify(faulty, samples=8, locate=True, progress=False).runtimes
    assert row.status == "fail", (row.max_abs_error, row.atol, row.min_cosine)
    assert row.first_divergent_unit == "stage3.2"


@pytest.mark.slow
def test_the_android_app_refuses_a_pte_from_a_newer_exporter(export_cache, tmp_path):
    export_dir = shutil.copytree(export_cache("v2_x0_5", "executorch"), tmp_path / "export")
    manifest = json.loads((export_dir / "sdeploy.json").read_text())
    manifest["artifacts"]["executorch"]["details"]["executorch_version"] = "1.6.0"
    (export_dir / "sdeploy.json").write_text(json.dumps(manifest))
    result = run_cli("bundle", "--app", "android", "--from", export_dir, "--dest", tmp_path / "dest")
    assert_one_line_error(result, "exported by executorch 1.6.0, newer than the Android app's runtime")
    assert not (tmp_path / "dest").exists()


# ---------------------------------------------------------------- dynamic batch, pixels


@pytest.mark.slow
def test_dynamic_batch_runs_any_batch_and_says_what_v2_leaves_outside(export_cache):
    from shufflenet_deploy.backends.executorch.runner import ExecuTorchRunner

    export_dir = export_cache("v2_x0_5", "executorch", dynamic_batch=True)
    manifest, record = only_record(export_dir)
    details = record["details"]
    assert record["inputs"][0]["shape"][0] == "batch" and details["dynamic_batch"] and details["max_batch"] == 8
    # XNNPACK takes no slice of a tensor with a dynamic dimension: V2's channel split stays outside.
    assert details["ops_outside_xnnpack"] == {"aten.slice_copy.Tensor": 26} and not details["fully_delegated"]
    assert "fixed --batch for one partition" in details["delegation_note"]
    runner = ExecuTorchRunner(export_dir, record, manifest_contract(manifest), threads=1)
    network = load_model("v2_x0_5", "random", img_size=TEST_IMG_SIZE).model.eval()
    inputs = np.random.default_rng(1).standard_normal((11, 3, TEST_IMG_SIZE, TEST_IMG_SIZE), dtype=np.float32)
    with torch.no_grad():
        expected = network(torch.from_numpy(inputs)).numpy()
    for batch in (1, 3, 8, 11):  # 11: more than the planned 8, run as 8 + 3
        np.testing.assert_allclose(runner.run(inputs[:batch]), expected[:batch], rtol=0, atol=1e-4 * np.ptp(expected))


@pytest.mark.slow
def test_pixels_nhwc_and_softmax_verify_with_only_the_cast_outside(export_cache):
    export_dir = export_cache("v2_x0_5", "executorch", embed_preprocess=True, softmax=True)
    _, record = only_record(export_dir)
    assert record["inputs"][0] == {"name": "input", "shape": [1, TEST_IMG_SIZE, TEST_IMG_SIZE, 3], "dtype": "uint8",
                                   "kind": "pixels", "layout": "NHWC"}  # fmt: skip
    assert record["outputs"][0]["kind"] == "probabilities"
    details = record["details"]
    assert details["xnnpack_partitions"] == 1 and details["ops_outside_xnnpack"] == {CAST: 1}
    assert "delegation_note" not in details
    assert_verifies_in_one_xnnpack_partition(export_dir, samples=4, runtime="executorch")


# ---------------------------------------------------------------- accuracy on real data


@pytest.fixture(scope="module")
def digits_exports(tmp_path_factory):
    """The digits model as fp32, fp16 and int8 .pte files in one export directory, and its held-out images."""
    root = tmp_path_factory.mktemp("et-digits")
    write_digits(root / "digits")
    out = root / "export"
    for options in ({}, {"half": True}, {"quantize": "int8", "calib": root / "digits" / "train"}):
        result = export(None, "executorch", weights=DIGITS_CHECKPOINT, out=out, progress=False, **options)
        assert result.ok, result.to_dict()
    return out, root / "digits" / "heldout"


@pytest.mark.slow
def test_digits_fp32_fp16_and_int8_keep_their_accuracy(digits_exports):
    export_dir, heldout = digits_exports
    manifest = read_manifest(export_dir)
    int8 = manifest["artifacts"]["executorch-int8"]["details"]
    assert int8["fully_delegated"] and int8["quantization"]["calibration"]["images_used"] == 256
    # Synthetic colour fields are far outside what a digits model is calibrated for: judge on real images.
    report = verify(export_dir, images=heldout, samples=0, progress=False)
    recorded = recorded_heldout()
    assert report.images == recorded["total"]
    correct = {r.key: round(r.accuracy * report.images) for r in report.runtimes}
    assert round(report.reference["accuracy"] * report.images) == recorded["correct"]
    assert correct["executorch"] == correct["executorch-fp16"] == recorded["correct"], correct
    assert correct["executorch-int8"] >= recorded["correct"] - INT8_MAX_EXTRA_ERRORS, correct
    for runtime in report.runtimes:
        assert runtime.status == "pass", (runtime.key, runtime.max_abs_error, runtime.atol, runtime.reason)


def test_the_fp16_rule_needs_a_floor_and_without_one_the_fixed_fp16_tolerance_applies():
    from shufflenet_deploy.tolerances import DEFAULT_TOLERANCES, limits

    reference = np.array([[0.0, 10.0]])
    fixed = limits({"precision": "fp16", "format": "pte"}, reference, None)
    assert (fixed.atol, fixed.min_cosine) == (10.0 * DEFAULT_TOLERANCES["fp16"].max_rel_error, 0.99)
