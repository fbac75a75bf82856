"""Weights: download path (local HTTP server), checkpoint formats, errors, seeded random init."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import pytest
import torch
from conftest import assert_one_line_error, run_cli, run_sdeploy

from shufflenet_deploy import SdeployError, create_model, get_arch, load_model
from shufflenet_deploy import weights as weights_mod
from shufflenet_deploy.errors import FAILURE_EXIT_CODE
from shufflenet_deploy.nets import registry
from shufflenet_deploy.weights import (
    PretrainedWeights,
    fetch_pretrained,
    random_state_dict,
    read_checkpoint,
    save_checkpoint,
    state_dict_sha256,
)

ARCH = "v2_x0_5"


def checkpoint_bytes(state_dict: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


@pytest.fixture
def served_weights(file_server, torch_home, monkeypatch):
    """v2_x0_5's registry entry pointed at a checkpoint this test made, served on 127.0.0.1."""
    state = create_model(ARCH, weights="random", seed=7).state_dict()
    body = checkpoint_bytes(state)
    digest = hashlib.sha256(body).hexdigest()
    filename = f"shufflenetv2_x0.5-{digest[:10]}.pth"
    file_server.files[filename] = body
    spec = get_arch(ARCH)
    # Listed size as its publisher would round it: our random checkpoint is not byte-identical to torchvision's.
    published = replace(spec.pretrained, url=f"{file_server.url}/{filename}", size_mib=round(len(body) / 2**20, 3))
    monkeypatch.setitem(registry._REGISTRY, ARCH, replace(spec, pretrained=published))
    return published, state, body


def cached_files(torch_home):
    folder = torch_home / "hub" / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------- download


def test_published_v2_urls_are_torchvisions():
    names = {n: get_arch(n).pretrained.filename for n in ("v2_x0_5", "v2_x1_0", "v2_x1_5", "v2_x2_0")}
    assert names == {
        "v2_x0_5": "shufflenetv2_x0.5-f707e7126e.pth",
        "v2_x1_0": "shufflenetv2_x1-5666bf0f80.pth",
        "v2_x1_5": "shufflenetv2_x1_5-3c479a10.pth",
        "v2_x2_0": "shufflenetv2_x2_0-8be3c8ee.pth",
    }
    assert all(get_arch(n).pretrained.url.startswith("https://download.pytorch.org/models/") for n in names)
    assert get_arch("v2_x1_5").pretrained.contract.resize_size == 232  # torchvision's eval recipe for x1.5/x2.0


def test_imagenet_weights_download_into_the_torch_hub_cache(served_weights, torch_home, file_server):
    published, state, body = served_weights
    loaded = load_model(ARCH, "imagenet", progress=False)
    assert cached_files(torch_home) == [published.filename]
    assert (torch_home / "hub" / "checkpoints" / published.filename).read_bytes() == body
    assert loaded.weights.kind == "imagenet"
    assert loaded.weights.file_sha256 == hashlib.sha256(body).hexdigest()
    assert loaded.weights.state_sha256 == state_dict_sha256(state)
    assert loaded.weights.labels[0] == "tench" and len(loaded.weights.labels) == 1000
    # A second load reuses the cache: no new request.
    load_model(ARCH, "imagenet", progress=False)
    assert file_server.requests == [published.filename]


def test_download_shows_progress_on_stderr(served_weights, gray_image):
    result = run_cli("classify", "--arch", ARCH, "--json", gray_image)
    assert result.exit_code == 0, result.stderr
    assert "Downloading shufflenetv2_x0.5-" in result.stderr
    assert result.stdout.lstrip().startswith("{")  # stdout stays pure JSON


def test_corrupt_cache_entry_is_downloaded_again(served_weights, torch_home, file_server):
    published, _, body = served_weights
    cached = torch_home / "hub" / "checkpoints" / published.filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"garbage")
    load_model(ARCH, "imagenet", progress=False)
    assert cached.read_bytes() == body
    assert file_server.requests == [published.filename]


def test_hash_mismatch_is_an_error_and_caches_nothing(served_weights, torch_home, file_server, gray_image):
    published, _, _ = served_weights
    file_server.files[published.filename] = b"not the file the hash describes"
    result = run_cli("classify", "--arch", ARCH, gray_image)
    assert_one_line_error(result, "sha256", "expected", published.hash_prefix, code=FAILURE_EXIT_CODE)
    assert cached_files(torch_home) == []


def test_interrupted_download_is_an_error_and_caches_nothing(served_weights, torch_home, file_server, gray_image):
    published, _, _ = served_weights
    file_server.truncated.add(published.filename)
    result = run_cli("classify", "--arch", ARCH, gray_image)
    assert_one_line_error(result, "interrupted", "--weights PATH", code=FAILURE_EXIT_CODE)
    assert cached_files(torch_home) == []


def test_offline_download_error_says_what_to_do(torch_home, tmp_path, gray_image):
    # The real entry point, the real registry URL file name, a mirror nobody listens on.
    env = {**_env(torch_home), "SDEPLOY_WEIGHTS_MIRROR": "http://127.0.0.1:9"}
    result = run_sdeploy("classify", "--arch", ARCH, gray_image, env=env)
    assert_one_line_error(result, "could not download", "shufflenetv2_x0.5-f707e7126e.pth", "--weights PATH", "--weights random", code=FAILURE_EXIT_CODE)


def test_mirror_serves_the_published_file_names(file_server, torch_home, monkeypatch):
    monkeypatch.setenv("SDEPLOY_WEIGHTS_MIRROR", file_server.url)
    body = checkpoint_bytes({"w": torch.ones(2)})
    published = PretrainedWeights(url="https://example.invalid/models/thing-" + hashlib.sha256(body).hexdigest()[:8] + ".pth")
    file_server.files[published.filename] = body
    assert fetch_pretrained(published, progress=False).read_bytes() == body


def test_http_error_is_reported(file_server, torch_home, monkeypatch):
    monkeypatch.setenv("SDEPLOY_WEIGHTS_MIRROR", file_server.url)  # serves nothing: 404
    with pytest.raises(SdeployError, match="HTTP 404"):
        load_model(ARCH, "imagenet", progress=False)


def test_arch_without_published_weights_names_the_alternatives(gray_image):
    result = run_cli("classify", "--arch", "v1_g3_x1_0", gray_image)
    assert_one_line_error(result, "no downloadable pretrained weights", "--weights PATH", "--weights random", "v2_x0_5", "ShuffleNet-Series")


def test_imagenet_weights_with_other_class_count_is_an_error(served_weights):
    with pytest.raises(SdeployError, match="1000 classes, not 10"):
        load_model(ARCH, "imagenet", num_classes=10, progress=False)


# ---------------------------------------------------------------- local checkpoints


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: sd, id="plain"),
        pytest.param(lambda sd: {"state_dict": sd}, id="nested"),
        pytest.param(lambda sd: {"model": sd, "epoch": 3}, id="nested-model"),
        pytest.param(lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}}, id="data-parallel"),
    ],
)
def test_checkpoint_formats_load_exactly(wrap, tmp_path):
    state = create_model(ARCH, weights="random", seed=3).state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(state), path)
    loaded = load_model(ARCH, path)
    assert loaded.weights.state_sha256 == state_dict_sha256(state)
    assert loaded.weights.kind == "file" and loaded.weights.location == str(path)


def test_num_classes_is_inferred_from_the_classifier(tmp_path):
    state = create_model("v1_g3_x0_5", weights="random", num_classes=10).state_dict()
    torch.save(state, tmp_path / "ten.pth")
    loaded = load_model("v1_g3_x0_5", tmp_path / "ten.pth")
    assert loaded.weights.num_classes == 10 == loaded.model.num_classes
    assert loaded.weights.labels == [f"class_{i}" for i in range(10)]


def test_sdeploy_checkpoint_carries_arch_labels_and_contract(tmp_path):
    model = create_model(ARCH, weights="random", num_classes=3)
    contract = get_arch(ARCH).contract.at_size(96)
    save_checkpoint(tmp_path / "ft.pt", model.state_dict(), arch=ARCH, labels=["a", "b", "c"], contract=contract.to_dict())
    loaded = load_model(None, tmp_path / "ft.pt")
    assert loaded.arch.name == ARCH
    assert loaded.weights.labels == ["a", "b", "c"]
    assert loaded.weights.contract == contract
    with pytest.raises(SdeployError, match="was trained as v2_x0_5, not v2_x1_0"):
        load_model("v2_x1_0", tmp_path / "ft.pt")


def test_missing_keys_and_shape_mismatches_are_listed_with_shapes(tmp_path, gray_image):
    state = create_model("v2_x1_0", weights="random").state_dict()
    torch.save(state, tmp_path / "x1.pth")
    result = run_cli("classify", "--arch", ARCH, "--weights", tmp_path / "x1.pth", gray_image)
    assert_one_line_error(result, "does not fit v2_x0_5", "shape mismatch", "stage2.0.branch1.2.weight checkpoint [58,24,1,1] vs model [24,24,1,1]", "it fits v2_x1_0")

    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "broken.pth")
    result = run_cli("classify", "--arch", "v2_x1_0", "--weights", tmp_path / "broken.pth", gray_image)
    assert_one_line_error(result, "1 missing key(s): fc.bias [1000]", "1 unexpected key(s): extra.weight [2,2]")


def test_unsafe_pickle_is_refused_without_running_it(tmp_path, gray_image):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": _Payload(marker)}, tmp_path / "evil.pth")
    result = run_cli("classify", "--arch", ARCH, "--weights", tmp_path / "evil.pth", gray_image)
    assert_one_line_error(result, "not weights-only", "refused")
    assert not marker.exists()


class _Payload:
    """Pickles to a call that would create ``marker``: proof that it never ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"hello, I am a text file", "not a PyTorch checkpoint or is corrupt"),
        ("truncated", "not a PyTorch checkpoint or is corrupt"),
        ("tensor", "does not contain a state_dict"),
        ("dict-without-state", "without a state_dict (top-level keys: epoch, lr)"),
    ],
)
def test_not_a_checkpoint_is_a_clear_error(content, fragment, tmp_path, gray_image):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        body = checkpoint_bytes(create_model(ARCH).state_dict())
        path.write_bytes(body[: len(body) // 2])
    elif content == "tensor":
        torch.save(torch.ones(3), path)
    elif content == "dict-without-state":
        torch.save({"epoch": 3, "lr": 0.1}, path)
    else:
        path.write_bytes(content)
    result = run_cli("classify", "--arch", ARCH, "--weights", path, gray_image)
    assert_one_line_error(result, fragment)


def test_missing_weights_file(gray_image):
    result = run_cli("classify", "--arch", ARCH, "--weights", "/nonexistent/w.pth", gray_image)
    assert_one_line_error(result, "weights file not found: /nonexistent/w.pth")


def test_checkpoint_without_arch_that_fits_nothing_asks_for_arch(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "w.pth")
    with pytest.raises(SdeployError, match="pass --arch NAME"):
        load_model(None, tmp_path / "w.pth")


def test_read_checkpoint_never_unpickles_arbitrary_objects(monkeypatch, tmp_path):
    calls = []
    real_load = torch.load
    monkeypatch.setattr(weights_mod.torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    torch.save(create_model(ARCH).state_dict(), tmp_path / "w.pth")
    read_checkpoint(tmp_path / "w.pth")
    assert calls and all(k.get("weights_only") is True for k in calls)


# ---------------------------------------------------------------- random weights


def test_random_weights_are_seeded_and_reproducible():
    a = load_model("v1_g3_x0_5", "random", seed=1).weights.state_sha256
    b = load_model("v1_g3_x0_5", "random", seed=1).weights.state_sha256
    c = load_model("v1_g3_x0_5", "random", seed=2).weights.state_sha256
    assert a == b != c


@pytest.mark.parametrize("name", ["v2_x0_5", "v1_g8_x1_0"])
def test_random_weights_have_nontrivial_batchnorm(name):
    model = load_model(name, "random").model
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean.abs().mean() > 1e-3
            assert (module.running_var - 1).abs().mean() > 1e-2
            assert (module.weight - 1).abs().mean() > 0.05
            assert module.bias.abs().mean() > 0.05


@pytest.mark.parametrize("name", ["v2_x1_0", "v1_g3_x1_0"])
def test_random_weights_give_input_dependent_well_scaled_logits(name):
    from shufflenet_deploy.preprocess import random_inputs

    loaded = load_model(name, "random")
    with torch.no_grad():
        logits = loaded.model(torch.from_numpy(random_inputs(8, loaded.weights.contract, seed=11)))
    assert 1 < logits.std() < 50
    assert len(set(logits.argmax(1).tolist())) >= 4  # not one class for every input


def test_random_state_dict_values_are_independent_of_torch_rng():
    model = create_model(ARCH)
    torch.manual_seed(123)
    first = random_state_dict(model, get_arch(ARCH).contract, seed=5)
    torch.manual_seed(456)
    second = random_state_dict(model, get_arch(ARCH).contract, seed=5)
    assert state_dict_sha256(first) == state_dict_sha256(second)


def _env(torch_home):
    import os

    return {**os.environ, "TORCH_HOME": str(torch_home)}
