"""The CLI surface of the model zoo: help, version, list, info, classify, unknown names."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error, run_cli, run_sdeploy

from shufflenet_deploy import __version__, get_arch, list_models


def test_help_lists_every_command():
    result = run_sdeploy("--help")
    assert result.exit_code == 0
    for command in ("list", "info", "classify"):
        assert command in result.stdout


def test_version():
    result = run_sdeploy("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"sdeploy, version {__version__}"


def test_list_table_has_every_arch_with_its_numbers():
    result = run_cli("list")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("v")}
    assert sorted(lines) == sorted(list_models())
    assert "2.28M" in lines["v2_x1_0"] and "144.9" in lines["v2_x1_0"] and "imagenet" in lines["v2_x1_0"]
    assert "manual" in lines["v1_g3_x1_0"] and "67.8" in lines["v1_g3_x1_0"]
    assert lines["v1_g2_x0_5"].split()[-1] == "-"


def test_list_json_round_trips_the_registry():
    data = json.loads(run_cli("list", "--json").stdout)
    by_name = {d["name"]: d for d in data}
    assert len(by_name) == 24
    assert by_name["v2_x0_5"]["params"] == 1_366_792
    assert by_name["v2_x0_5"]["pretrained"]["sha256_prefix"] == "f707e7126e"
    assert by_name["v2_x2_0"]["reference_accuracy"]["top1"] == 76.23
    assert by_name["v1_g8_x1_0"]["pretrained"] is None and by_name["v1_g8_x1_0"]["manual_weights"]
    assert by_name["v1_g3_x1_0"]["input_contract"]["color_order"] == "BGR"


@pytest.mark.parametrize("flags, expected", [(["--family", "v2"], 4), (["--family", "v1"], 20), (["--pretrained"], 4)])
def test_list_filters(flags, expected):
    assert len(json.loads(run_cli("list", "--json", *flags).stdout)) == expected


def test_info_shows_details_contract_and_layers():
    result = run_cli("info", "v2_x1_0")
    assert result.exit_code == 0
    out = result.stdout
    assert "ShuffleNet V2 1.0x" in out and "2,278,604" in out and "144.91" in out
    assert "resize shorter side to 256" in out and "center crop 224" in out and "RGB" in out
    assert "stage3.7" in out and "1024x7x7" in out
    assert "shufflenetv2_x1-5666bf0f80.pth" in out


def test_info_json_units_add_up():
    data = json.loads(run_cli("info", "v1_g8_x1_0", "--json", "--img-size", "160").stdout)
    assert data["input_contract"]["img_size"] == 160
    assert sum(u["params"] for u in data["units"]) == get_arch("v1_g8_x1_0").params
    assert sum(u["mflops"] for u in data["units"]) == pytest.approx(data["mflops_at_img_size"], abs=0.05)
    assert data["units"][-1]["output_shape"] == [1000]


@pytest.mark.parametrize("command", [["info"], ["classify", "--weights", "random", "--arch"]])
def test_unknown_arch_suggests_close_names(command, gray_image):
    args = [*command, "v2_x1_1"] + ([gray_image] if command[0] == "classify" else [])
    result = run_sdeploy(*args)
    assert_one_line_error(result, "unknown architecture 'v2_x1_1'", "did you mean", "v2_x1_0", "sdeploy list")


def test_info_rejects_a_tiny_image_size():
    result = run_cli("info", "v2_x1_0", "--img-size", "16")
    assert result.exit_code == 2 and "16 is not in the range 32<=x<=2048" in result.stderr


def test_classify_prints_top5(gray_image):
    result = run_cli("classify", gray_image, "--arch", "v2_x0_5", "--weights", "random", "--json")
    assert result.exit_code == 0, result.stderr
    predictions = json.loads(result.stdout)[gray_image]
    assert len(predictions) == 5
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1


def test_classify_unreadable_image(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = run_cli("classify", str(bad), "--arch", "v2_x0_5", "--weights", "random")
    assert_one_line_error(result, "cannot read image", "bad.jpg")
