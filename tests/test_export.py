"""sdeploy export: every target, read back in its own runtime, manifest, metadata, options, errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import TEST_IMG_SIZE, assert_one_line_error, run_cli

from shufflenet_deploy import export, list_models, load_model
from shufflenet_deploy.backends import all_options, get_backend, runner_class, runtime_for, target_names
from shufflenet_deploy.fsutil import tree_sha256
from shufflenet_deploy.manifest import read_manifest
from shufflenet_deploy.preprocess import random_inputs

V2 = list_models("v2")
V1_OFFICIAL_GROUPS = [n for n in list_models("v1") if n.startswith(("v1_g3", "v1_g8"))]
V1_OTHERS = [n for n in list_models("v1") if n not in V1_OFFICIAL_GROUPS]


def eager_logits(manifest: dict, inputs: np.ndarray) -> np.ndarray:
    model = load_model(manifest["arch"], "random", num_classes=manifest["num_classes"], seed=manifest["weights"]["seed"]).model
    with torch.no_grad():
        return model(torch.from_numpy(inputs)).numpy()


def run_artifact(export_dir: Path, key: str, inputs: np.ndarray) -> np.ndarray:
    manifest = read_manifest(export_dir)
    record = manifest["artifacts"][key]
    from shufflenet_deploy.manifest import manifest_contract

    return runner_class(runtime_for(record))(export_dir, record, manifest_contract(manifest)).run(inputs)


def sample_inputs(manifest: dict, count: int = 3) -> np.ndarray:
    from shufflenet_deploy.manifest import manifest_contract

    return random_inputs(count, manifest_contract(manifest), seed=42)


def assert_close_to_eager(export_dir: Path, key: str, rel: float = 1e-4) -> None:
    manifest = read_manifest(export_dir)
    inputs = sample_inputs(manifest)
    expected = eager_logits(manifest, inputs)
    actual = run_artifact(export_dir, key, inputs)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= rel * np.abs(expected).max(), (key, np.abs(actual - expected).max())
    assert (actual.argmax(1) == expected.argmax(1)).all()


# ---------------------------------------------------------------- every target, read back


def visible_files(folder: Path) -> list[str]:
    """What a user sees with ls: the lock file is hidden and never counts."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.slow
@pytest.mark.parametrize("arch", V2 + V1_OFFICIAL_GROUPS)
def test_all_targets_export_and_run_in_their_runtimes(arch, export_cache):
    export_dir = export_cache(arch)
    manifest = read_manifest(export_dir)
    assert {record["target"] for record in manifest["artifacts"].values()} == set(target_names())
    for key, record in manifest["artifacts"].items():
        if record["precision"] == "fp32":
            assert_close_to_eager(export_dir, key)
    assert_coreml_classifier_spec(export_dir, manifest)


def assert_coreml_classifier_spec(export_dir: Path, manifest: dict) -> None:
    import coremltools as ct

    record = manifest["artifacts"]["coreml"]
    spec = ct.utils.load_spec(str(export_dir / record["path"]))
    (image,) = spec.description.input
    assert image.name == "image" and image.type.WhichOneof("Type") == "imageType"
    assert (image.type.imageType.width, image.type.imageType.height) == (TEST_IMG_SIZE, TEST_IMG_SIZE)
    bgr = manifest["input"]["color_order"] == "BGR"
    assert image.type.imageType.colorSpace == (ct.proto.FeatureTypes_pb2.ImageFeatureType.BGR if bgr else ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB)
    outputs = {o.name: o.type.WhichOneof("Type") for o in spec.description.output}
    assert outputs == {"classLabel": "stringType", "classLabel_probs": "dictionaryType", "logits": "multiArrayType"}
    assert spec.description.predictedFeatureName == "classLabel"
    assert list(spec.mlProgram.functions) == ["main"] and spec.WhichOneof("Type") == "mlProgram"
    labels = (export_dir / "labels.txt").read_text().splitlines()
    classify = [op for op in _mil_ops(spec) if op.type == "classify"]
    assert len(classify) == 1
    assert list(_classify_labels(spec, classify[0])) == labels
    meta = spec.description.metadata
    assert meta.author == "shufflenet-deploy" and manifest["arch"] in meta.shortDescription
    assert meta.userDefined["com.apple.coreml.model.preview.type"] == "imageClassifier"
    assert meta.userDefined["arch"] == manifest["arch"]
    assert json.loads(meta.userDefined["input_contract"]) == manifest["input"]


def _mil_ops(spec):
    function = spec.mlProgram.functions["main"]
    return list(function.block_specializations[function.opset].operations)


def _classify_labels(spec, classify_op):
    """The class names stored inline in the classify op's ``classes`` argument."""
    values = classify_op.inputs["classes"].arguments[0].value.immediateValue.list.values
    return [v.immediateValue.tensor.strings.values[0] for v in values]


@pytest.mark.slow
@pytest.mark.parametrize("arch", V1_OTHERS)
def test_remaining_v1_variants_export_to_onnx(arch, export_cache):
    export_dir = export_cache(arch, "onnx")
    assert_close_to_eager(export_dir, "onnx")


# ---------------------------------------------------------------- manifest and metadata


def test_manifest_records_everything_and_hashes_match(export_cache):
    export_dir = export_cache("v2_x0_5")
    manifest = read_manifest(export_dir)
    assert manifest["arch"] == "v2_x0_5" and manifest["num_classes"] == 1000
    assert manifest["weights"]["kind"] == "random" and len(manifest["weights"]["state_sha256"]) == 64
    assert manifest["weights"]["state_sha256"] == load_model("v2_x0_5", "random").weights.state_sha256
    contract = manifest["input"]
    assert contract["img_size"] == 64 and contract["resize_size"] == 73 and contract["crop"] == "center"
    assert contract["mean"] == [0.485, 0.456, 0.406] and contract["color_order"] == "RGB" and contract["layout"] == "NCHW"
    assert (export_dir / manifest["labels"]["file"]).read_text().splitlines()[0] == "tench"
    for record in manifest["artifacts"].values():
        for entry in record["files"]:
            assert tree_sha256(export_dir / entry["path"]) == entry["sha256"]
        assert record["size"] == sum(e["size"] for e in record["files"]) > 100_000
        assert record["precision"] and record["exporter"] and record["inputs"] and record["outputs"]
    assert manifest["artifacts"]["ncnn"]["details"]["input_blob"] == "in0"
    assert manifest["artifacts"]["ncnn"]["outputs"][0]["name"] == "out0"
    assert manifest["artifacts"]["torchscript"]["details"]["bytecode_version"] >= 4
    assert "dynamo=True" in manifest["artifacts"]["onnx"]["exporter"]
    for tool in ("torch", "onnx", "onnxsim", "coremltools", "pnnx", "ncnn", "sdeploy"):
        assert manifest["versions"][tool]


def test_metadata_round_trips_in_every_format(export_cache):
    export_dir = export_cache("v2_x0_5")
    manifest = read_manifest(export_dir)
    onnx_model = onnx.load(export_dir / manifest["artifacts"]["onnx"]["path"])
    props = {p.key: p.value for p in onnx_model.metadata_props}
    assert props["arch"] == "v2_x0_5" and props["weights_sha256"] == manifest["weights"]["state_sha256"]
    assert json.loads(props["input_contract"]) == manifest["input"] and len(json.loads(props["labels"])) == 1000

    with zipfile.ZipFile(export_dir / manifest["artifacts"]["torchscript"]["path"]) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("extra/metadata.json")]
        extra = json.loads(archive.read(name))
    assert extra["arch"] == "v2_x0_5" and json.loads(extra["input_contract"]) == manifest["input"]


def test_torchscript_records_the_optimizer_path_and_folds_batchnorm(export_cache):
    details = read_manifest(export_cache("v2_x0_5"))["artifacts"]["torchscript"]["details"]
    assert details["mobile_optimizer"].startswith(("optimize_for_mobile", "jit.freeze"))
    assert details["batchnorm_folded"] is True


# ---------------------------------------------------------------- options


def test_dynamic_batch_runs_at_batch_1_and_8(export_cache):
    export_dir = export_cache("v1_g3_x0_5", "onnx,torchscript", dynamic_batch=True)
    manifest = read_manifest(export_dir)
    for key in ("onnx", "torchscript"):
        assert manifest["artifacts"][key]["inputs"][0]["shape"][0] == "batch"
    onnx_model = onnx.load(export_dir / manifest["artifacts"]["onnx"]["path"])
    assert onnx_model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    import onnxruntime as ort

    session = ort.InferenceSession(str(export_dir / manifest["artifacts"]["onnx"]["path"]), providers=["CPUExecutionProvider"])
    from torch.jit.mobile import _load_for_lite_interpreter

    lite = _load_for_lite_interpreter(str(export_dir / manifest["artifacts"]["torchscript"]["path"]))
    for batch in (1, 8):
        inputs = sample_inputs(manifest, batch)
        expected = eager_logits(manifest, inputs)
        scale = np.abs(expected).max()
        onnx_out = session.run(None, {"input": inputs})[0]
        lite_out = lite(torch.from_numpy(inputs)).numpy()
        assert onnx_out.shape == lite_out.shape == (batch, 1000)
        assert np.abs(onnx_out - expected).max() <= 1e-4 * scale
        assert np.abs(lite_out - expected).max() <= 1e-4 * scale


def test_fixed_batch_is_recorded(export_cache):
    manifest = read_manifest(export_cache("v2_x0_5", "onnx", batch=4))
    assert manifest["artifacts"]["onnx"]["inputs"][0]["shape"] == [4, 3, 64, 64]


@pytest.mark.slow
def test_half_halves_onnx_and_ncnn_and_keeps_fp32_io(export_cache):
    full = read_manifest(export_cache("v2_x1_0", "onnx,ncnn"))
    half_dir = export_cache("v2_x1_0", "onnx,ncnn", half=True)
    half = read_manifest(half_dir)
    for key in ("onnx", "ncnn"):
        ratio = half["artifacts"][f"{key}-fp16"]["size"] / full["artifacts"][key]["size"]
        assert 0.45 < ratio < 0.55, (key, ratio)
        assert half["artifacts"][f"{key}-fp16"]["precision"] == "fp16"
    model = onnx.load(half_dir / half["artifacts"]["onnx-fp16"]["path"])
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    inputs = sample_inputs(half)
    expected = eager_logits(half, inputs)
    for key in ("onnx-fp16", "ncnn-fp16"):
        actual = run_artifact(half_dir, key, inputs)
        cosine = (actual * expected).sum(1) / np.linalg.norm(actual, axis=1) / np.linalg.norm(expected, axis=1)
        assert cosine.min() > 0.999, (key, cosine)


def test_opset_below_18_uses_the_torchscript_exporter(export_cache):
    export_dir = export_cache("v2_x0_5", "onnx", opset=13)
    record = read_manifest(export_dir)["artifacts"]["onnx"]
    assert "dynamo=False" in record["exporter"] and record["details"]["opset"] == 13
    model = onnx.load(export_dir / record["path"])
    assert model.opset_import[0].version == 13
    assert record["details"]["nodes_before_simplify"] > record["details"]["nodes_after_simplify"]
    assert_close_to_eager(export_dir, "onnx")


def test_bytecode_backport_is_recorded_and_loads(export_cache):
    from torch.jit.mobile import _get_model_bytecode_version

    export_dir = export_cache("v2_x0_5", "torchscript", bytecode_version=7)
    record = read_manifest(export_dir)["artifacts"]["torchscript"]
    assert record["details"]["bytecode_version"] == 7
    assert _get_model_bytecode_version(str(export_dir / record["path"])) == 7
    assert_close_to_eager(export_dir, "torchscript")


def test_coreml_tensor_mode_fp32(export_cache):
    import coremltools as ct

    export_dir = export_cache("v1_g8_x0_5", "coreml", coreml_mode="tensor", precision="fp32", dynamic_batch=True, min_ios="17")
    record = read_manifest(export_dir)["artifacts"]["coreml-tensor-fp32"]
    assert record["precision"] == "fp32" and record["details"]["minimum_deployment_target"] == "iOS17"
    spec = ct.utils.load_spec(str(export_dir / record["path"]))
    (tensor,) = spec.description.input
    assert tensor.name == "input" and tensor.type.WhichOneof("Type") == "multiArrayType"
    assert tensor.type.multiArrayType.shapeRange.sizeRanges[0].upperBound == 64
    assert [o.name for o in spec.description.output] == ["logits"]
    assert spec.specificationVersion >= 8  # iOS 17
    assert "com.apple.coreml.model.preview.type" not in spec.description.metadata.userDefined


def test_ncnn_intermediates_are_removed_or_kept(export_cache):
    plain = export_cache("v2_x0_5", "ncnn")
    assert visible_files(plain) == ["labels.txt", "sdeploy.json", "v2_x0_5.ncnn.bin", "v2_x0_5.ncnn.param"]
    kept = export_cache("v2_x0_5", "ncnn", keep_intermediate=True)
    intermediate = kept / read_manifest(kept)["artifacts"]["ncnn"]["details"]["intermediate_dir"]
    assert {p.suffix for p in intermediate.iterdir()} >= {".pt", ".param", ".bin", ".py", ".onnx"}


def test_custom_labels_reach_the_manifest_and_coreml(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(5)))
    result = export("v2_x0_5", "coreml", weights="random", num_classes=5, labels=labels, out=tmp_path / "out", img_size=64, progress=False)
    assert result.ok
    assert (tmp_path / "out" / "labels.txt").read_text().splitlines() == [f"thing {i}" for i in range(5)]
    assert_coreml_classifier_spec(tmp_path / "out", read_manifest(tmp_path / "out"))


def test_exports_into_one_directory_merge_into_one_manifest(tmp_path):
    common = dict(weights="random", out=tmp_path, img_size=64, progress=False)
    export("v2_x0_5", "onnx", **common)
    export("v2_x0_5", "torchscript", **common)
    assert set(read_manifest(tmp_path)["artifacts"]) == {"onnx", "torchscript"}
    assert visible_files(tmp_path) == ["labels.txt", "sdeploy.json", "v2_x0_5.onnx", "v2_x0_5.ptl"]


# ---------------------------------------------------------------- CLI behaviour


def test_cli_export_shows_progress_summary_and_json(tmp_path):
    result = run_cli("export", "--arch", "v2_x0_5", "--target", "onnx", "--target", "torchscript",
                     "--weights", "random", "--img-size", "64", "--out", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "[1/2] onnx" in result.stderr and "[2/2] torchscript: ok" in result.stderr
    assert "v2_x0_5.onnx" in result.stdout and "manifest:" in result.stdout

    result = run_cli("export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random", "--img-size", "64",
                     "--out", tmp_path, "--json", "--quiet")  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["ok"] and summary["targets"][0]["status"] == "ok" and result.stderr == ""


def test_a_failing_target_leaves_nothing_behind_and_others_still_run(tmp_path, monkeypatch):
    def broken_export(ctx):
        (ctx.staging / "v2_x0_5.mlpackage").mkdir()
        (ctx.staging / "v2_x0_5.mlpackage" / "half-written").write_bytes(b"x" * 100)
        raise RuntimeError("converter exploded\nwith a second line")

    monkeypatch.setattr(get_backend("coreml").target, "export", broken_export)
    result = run_cli("export", "--arch", "v2_x0_5", "--target", "coreml,onnx", "--weights", "random",
                     "--img-size", "64", "--out", tmp_path)  # fmt: skip
    assert_one_line_error(result, "export failed for coreml (RuntimeError: converter exploded)", code=1)
    assert any(line.split()[:2] == ["coreml", "failed"] for line in result.stdout.splitlines())
    assert visible_files(tmp_path) == ["labels.txt", "sdeploy.json", "v2_x0_5.onnx"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".sdeploy.lock"]
    assert set(read_manifest(tmp_path)["artifacts"]) == {"onnx"}


def test_missing_converter_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pnnx", None)  # import pnnx now raises ImportError
    result = run_cli("export", "--arch", "v2_x0_5", "--target", "ncnn", "--weights", "random", "--img-size", "64",
                     "--out", tmp_path, "--quiet")  # fmt: skip
    assert_one_line_error(result, "--target ncnn needs Python packages that are not installed (pnnx)",
                          'pip install "shufflenet-deploy[ncnn]"')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--img-size", "16"], ["'--img-size': 16 is not in the range 32<=x<=2048"]),
        (["--target", "tensorrt"], ["unknown target 'tensorrt'", "choose from " + ", ".join([*target_names(), "all"])]),
        (["--opset", "99"], ["--opset 99 is not supported"]),
        (["--num-classes", "3", "--labels", "LABELS4"], ["has 4 lines but the model has 3 classes"]),
    ],
)
def test_export_errors_are_one_clear_line(args, fragments, tmp_path):
    labels = tmp_path / "four.txt"
    labels.write_text("a\nb\nc\nd\n")
    args = [str(labels) if a == "LABELS4" else a for a in args]
    if "--target" not in args:
        args += ["--target", "onnx"]
    result = run_cli("export", "--arch", "v2_x0_5", "--weights", "random", "--out", tmp_path / "out", *args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "out").exists()


def test_a_target_option_it_cannot_honour_fails_that_target(tmp_path):
    result = run_cli("export", "--arch", "v2_x0_5", "--weights", "random", "--target", "torchscript",
                     "--bytecode-version", "99", "--out", tmp_path, "--quiet")  # fmt: skip
    assert_one_line_error(result, "torchscript (--bytecode-version 99 is newer than this torch writes", code=1)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random", "--out", blocker / "sub")
    assert_one_line_error(result, "cannot write to", "choose another --out")
    result = run_cli("export", "--arch", "v2_x0_5", "--target", "onnx", "--weights", "random", "--out", blocker)
    assert_one_line_error(result, "is a file")


def test_every_export_option_is_in_help_under_its_backend():
    text = run_cli("export", "--help").stdout
    for option in ("--arch", "--target", "--weights", "--out", "--force", "--img-size", "--num-classes", "--labels",
                   "--quiet", "--json", "--seed", "--verbose"):
        assert option in text, option
    for option in all_options():
        assert option.flag in text, option.flag
    for name in target_names():
        section = text.split(f"{name} options:")[1].split("\n\n")[0] if get_backend(name).options else ""
        for option in get_backend(name).options:
            assert option.flag in section, (name, option.flag)


def test_a_relative_out_directory_works_for_every_target(tmp_path, monkeypatch):
    # pnnx runs in its own working folder: relative paths handed to it once broke the ncnn export.
    monkeypatch.chdir(tmp_path)
    result = run_cli("export", "--arch", "v2_x0_5", "--target", "ncnn,onnx", "--weights", "random", "--img-size", "48",
                     "--out", "exports/rel", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    manifest = read_manifest(tmp_path / "exports" / "rel")
    assert set(manifest["artifacts"]) == {"ncnn", "onnx"}
    assert (tmp_path / "exports" / "rel" / manifest["artifacts"]["ncnn"]["path"]).is_file()
