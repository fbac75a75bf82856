"""Weights: published checkpoints as data, their download, local checkpoints, seeded random init.

Downloads go to torch hub's cache (``$TORCH_HOME/hub/checkpoints``) so files
a user already fetched through torchvision are reused.  Every file is read
with ``torch.load(weights_only=True)``: a checkpoint can never run code.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import http.client
import io
import json
import math
import os
import pickle
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .errors import FAILURE_EXIT_CODE, SdeployError
from .fsutil import atomic_path, file_sha256, remove_path
from .preprocess import InputContract, random_inputs
from .progress import progress_bar, status
from .sysutil import pid_alive

#: Seeds are NumPy/PyTorch seeds: 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
#: Point downloads at a mirror holding the same file names (air-gapped sites, tests).
MIRROR_ENV = "SDEPLOY_WEIGHTS_MIRROR"
DOWNLOAD_TIMEOUT_S = 30
_CHUNK = 1 << 16
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")
#: Top-level keys under which training scripts commonly nest the state_dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")
#: Our own checkpoint format (written by ``sdeploy finetune``) carries everything an export needs.
CHECKPOINT_FORMAT = "sdeploy-checkpoint/1"


@dataclass(frozen=True)
class PretrainedWeights:
    """A published checkpoint: where it lives and what it was trained to expect."""

    url: str
    #: The file's size in MiB, to 3 decimals as its publisher lists it: downloads stop beyond it.
    size_mib: float | None = None
    contract: InputContract = InputContract()
    num_classes: int = 1000
    labels: str = "imagenet"
    dataset: str = "ImageNet-1K"
    top1: float | None = None
    top5: float | None = None
    recipe: str = ""

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def max_bytes(self) -> int | None:
        """The most bytes the published file can have, given its listed size's rounding."""
        return None if self.size_mib is None else math.ceil((self.size_mib + 0.0005) * 2**20)

    @property
    def hash_prefix(self) -> str | None:
        """torch hub convention: ``name-<sha256 prefix>.pth``."""
        match = _HASH_IN_NAME.search(self.filename)
        return match.group(1) if match else None


@dataclass
class Checkpoint:
    """A state_dict read from disk, with whatever metadata the file carried."""

    path: Path
    sha256: str
    state_dict: dict[str, Tensor]
    arch: str | None = None
    labels: list[str] | None = None
    contract: InputContract | None = None
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- download


def cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_pretrained(weights: PretrainedWeights, progress: bool = True) -> Path:
    """Path of the cached checkpoint, downloading it first if needed."""
    folder = cache_dir()
    dest = folder / weights.filename
    if dest.exists():
        if _hash_ok(file_sha256(dest), weights.hash_prefix):
            return dest
        status(f"cached {dest} fails its hash check; downloading it again", progress)
    hint = (f"offline? download {weights.url} by hand and save it as {dest}, or set {MIRROR_ENV} to a folder URL "
            f"that has {weights.filename}; or use --weights PATH or --weights random")  # fmt: skip
    download(download_url(weights), dest, weights.hash_prefix, progress, weights.max_bytes, hint)
    return dest


def download_url(weights: PretrainedWeights) -> str:
    """The published URL, or the same file name under ``$SDEPLOY_WEIGHTS_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return weights.url
    scheme = urllib.parse.urlsplit(mirror).scheme
    if scheme not in ("http", "https", "file") or "\n" in mirror:
        raise SdeployError(f"{MIRROR_ENV}={mirror!r} is not an http(s):// or file:// URL; set it to the folder URL "
                           "that holds the weight files, or unset it")  # fmt: skip
    return f"{mirror.rstrip('/')}/{weights.filename}"


def download(url: str, dest: Path, hash_prefix: str | None, progress: bool = True, max_bytes: int | None = None,
             hint: str = "check your connection, or pass --weights PATH to a local copy") -> None:  # fmt: skip
    """Download ``url`` to ``dest`` atomically: a partial or wrong file never lands in the cache."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(dest.parent)
        with atomic_path(dest) as partial:
            digest = _download_to(url, partial, progress, max_bytes, hint)
            if not _hash_ok(digest, hash_prefix):
                raise SdeployError(
                    f"downloaded file from {url} has sha256 {digest[:12]}..., expected {hash_prefix}...; "
                    "the file is corrupt or was replaced; nothing was cached, try again or pass --weights PATH",
                    exit_code=FAILURE_EXIT_CODE,
                )
    except OSError as exc:
        raise SdeployError(f"cannot write the weights cache {dest.parent} ({exc.strerror or exc}); set TORCH_HOME to a "
                           "writable folder, or pass --weights PATH", exit_code=FAILURE_EXIT_CODE) from None  # fmt: skip


def remove_stale_temporaries(folder: Path) -> None:
    """Partial downloads of processes that were killed (their pid no longer runs) are removed."""
    for partial in folder.glob(".*.tmp"):
        pid = partial.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not pid_alive(int(pid)):
            remove_path(partial)


def _download_to(url: str, path: Path, progress: bool, max_bytes: int | None, offline_hint: str) -> str:
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            _check_size(url, total, max_bytes)
            with progress_bar(total, f"Downloading {url.rsplit('/', 1)[-1]}", progress) as advance:
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    _check_size(url, received, max_bytes)
                    out.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
    except http.client.IncompleteRead as exc:
        received += len(exc.partial)
        raise _failed(f"download of {url} was interrupted after {received} bytes; {offline_hint}") from None
    except urllib.error.HTTPError as exc:
        raise _failed(f"could not download {url}: HTTP {exc.code} {exc.reason}; {offline_hint}") from None
    except (urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _failed(f"could not download {url} ({reason}); {offline_hint}") from None
    except OSError as exc:
        if exc.errno in _LOCAL_WRITE_ERRORS:
            raise  # our side: the cache cannot take the file (download() says so)
        raise _failed(f"could not download {url} ({exc.strerror or exc}); {offline_hint}") from None
    if total and received != total:
        raise _failed(f"download of {url} was interrupted after {received} of {total} bytes; {offline_hint}")
    return digest.hexdigest()


_LOCAL_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR)


def _check_size(url: str, size: int | None, max_bytes: int | None) -> None:
    if size is not None and max_bytes is not None and size > max_bytes:
        raise _failed(f"{url} sends more than the {max_bytes} bytes the published file has; stopped, nothing was cached "
                      f"(check {MIRROR_ENV} or the network)")  # fmt: skip


def _failed(message: str) -> SdeployError:
    return SdeployError(message, exit_code=FAILURE_EXIT_CODE)


def _hash_ok(digest: str, prefix: str | None) -> bool:
    return prefix is None or digest.startswith(prefix)


# ---------------------------------------------------------------- local checkpoints


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint file safely and unwrap it to a plain state_dict."""
    path = Path(path)
    if not path.is_file():
        raise SdeployError(f"weights file not found: {path}; pass an existing checkpoint, --weights imagenet or --weights random")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; all mean "cannot use this"
        raise _load_error(path, exc) from None
    state_dict, meta = _unwrap(obj, path)
    check_finite(state_dict, path)
    checkpoint = Checkpoint(path=path, sha256=file_sha256(path), state_dict=state_dict)
    if meta.get("format") == CHECKPOINT_FORMAT:
        checkpoint.arch = meta.get("arch")
        checkpoint.labels = list(meta["labels"]) if meta.get("labels") else None
        checkpoint.contract = InputContract.from_dict(meta["contract"]) if meta.get("contract") else None
        checkpoint.extra = {k: v for k, v in meta.items() if k not in ("state_dict", "labels", "contract")}
    return checkpoint


#: How torch words a refusal by the weights-only unpickler (the wording changes between releases).
_NOT_WEIGHTS_ONLY = ("weights only load failed", "unsupported global", "unsupported class", "weights_only")


def _load_error(path: Path, exc: Exception) -> SdeployError:
    text = str(exc).lower()
    if isinstance(exc, pickle.UnpicklingError) and any(marker in text for marker in _NOT_WEIGHTS_ONLY):
        return SdeployError(
            f"{path} is a pickle that is not weights-only (loading it could run code), so it is refused; "
            "re-save it from a trusted environment with torch.save(model.state_dict(), PATH)"
        )
    return SdeployError(f"{path} is not a PyTorch checkpoint or is corrupt ({_first_words(exc)})")


def _first_words(exc: Exception, limit: int = 120) -> str:
    """The first line of an error, shortened at a word boundary."""
    line = next((part.strip() for part in str(exc).splitlines() if part.strip()), type(exc).__name__)
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + "..."


def _unwrap(obj: object, path: Path) -> tuple[dict[str, Tensor], dict]:
    meta: dict = {}
    if isinstance(obj, dict) and not _is_state_dict(obj):
        nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), dict)), None)
        if nested is None:
            keys = ", ".join(map(str, list(obj)[:5]))
            raise SdeployError(f"{path} holds a dict without a state_dict (top-level keys: {keys})")
        meta, obj = obj, nested
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise SdeployError(f"{path} does not contain a state_dict of tensors (found {type(obj).__name__})")
    # nn.DataParallel / DistributedDataParallel save every key with a "module." prefix.
    state_dict = {k.removeprefix("module."): v for k, v in obj.items()}
    return state_dict, meta


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def save_checkpoint(path: Path, state_dict: dict[str, Tensor], **meta) -> None:
    """Write an sdeploy checkpoint (state_dict + arch, labels, contract...) atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "state_dict": state_dict, **meta}
    with atomic_path(path) as tmp:
        tmp.write_bytes(serialised(payload))


# ---------------------------------------------------------------- applying a state_dict


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line report of what does not fit."""
    expected = model.state_dict()
    state_dict = dict(state_dict)
    for key in expected:
        # Checkpoints from before PyTorch 0.4.1 have no BatchNorm step counters; they do not affect inference.
        if key.endswith("num_batches_tracked"):
            state_dict.setdefault(key, expected[key])
    problems = describe_mismatch(expected, state_dict)
    if problems:
        raise SdeployError(f"{what}: {problems}")
    model.load_state_dict(state_dict, strict=True)


def check_finite(state_dict: dict[str, Tensor], source: str | Path) -> None:
    """Weights with NaN or Inf make every output NaN: refuse them where they come in."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise SdeployError(f"{source} has {bad} NaN or Inf value(s) in {key}; these weights cannot be used")


def describe_mismatch(expected: dict[str, Tensor], given: dict[str, Tensor], limit: int = 3) -> str:
    """'' when keys and shapes agree, else a short list of the first differences."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [k for k in expected if k in given and given[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): " + ", ".join(f"{k} {_shape(expected[k])}" for k in missing[:limit]))
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(f"{k} {_shape(given[k])}" for k in unexpected[:limit]))
    if wrong:
        parts.append(
            f"{len(wrong)} shape mismatch(es): "
            + ", ".join(f"{k} checkpoint {_shape(given[k])} vs model {_shape(expected[k])}" for k in wrong[:limit])
        )
    return "; ".join(parts)


def _shape(t: Tensor) -> str:
    return "[" + ",".join(map(str, t.shape)) + "]"


def state_dict_sha256(state_dict: dict[str, Tensor]) -> str:
    """A hash of the weights themselves (names, dtypes, shapes, values), independent of file format."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- random weights


def random_state_dict(model: nn.Module, contract: InputContract, seed: int = 0) -> dict[str, Tensor]:
    """Seeded weights with realistic, non-trivial BatchNorm statistics, the same on every machine.

    Weights come from NumPy's generator, which is reproducible across
    platforms and torch versions.  BatchNorm running statistics are then
    measured in one float64 forward pass over seeded synthetic images, so
    every layer sees O(1) activations and the logits depend on the input, as
    with trained weights.  The statistics, gammas and betas are all away from
    0/1, so a converter that drops or mis-folds BatchNorm fails parity checks.
    ``sdeploy verify`` rebuilds this exactly and checks its state hash.

    BatchNorm betas are drawn around +1 (:data:`BN_BETA_MEAN`), not 0.  With
    zero-mean betas a random ReLU/BatchNorm network is chaotic: it amplifies
    any small perturbation layer by layer, so fp16 rounding alone moved its
    logits by 1.5% of their range (cosine 0.996), far more than in trained
    networks.  Positive betas keep most ReLUs open, which puts the network in
    the ordered regime trained networks are in: the same rounding then moves
    the logits by 0.3-0.6% (cosine above 0.9998), and every input still gets
    its own top class.
    """
    rng = np.random.default_rng(seed)
    head = model.classifier_key.rsplit(".", 1)[0]
    values = {}
    for key, tensor in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            values[key] = torch.zeros_like(tensor)
        else:
            batchnorm = not key.startswith(head + ".")
            values[key] = torch.from_numpy(_random_values(key, tuple(tensor.shape), rng, batchnorm)).to(tensor.dtype)
    calibrated = copy.deepcopy(model).double()
    calibrated.load_state_dict(values)
    _calibrate_batchnorm(calibrated, contract.at_size(CALIBRATION_SIZE), seed)
    return {key: value.to(values[key].dtype) for key, value in calibrated.state_dict().items()}


CALIBRATION_SIZE = 224
CALIBRATION_IMAGES = 8
#: Bump when random_state_dict would produce other values: cached ones of an older generator are not reused.
RANDOM_GENERATOR_VERSION = 2  # 2: BatchNorm betas around +1


def cached_random_state_dict(arch: str, model: nn.Module, contract: InputContract, seed: int) -> dict[str, Tensor]:
    """:func:`random_state_dict`, kept in the weights cache so repeated commands skip the BatchNorm calibration.

    The key covers everything the values depend on: arch, classes, seed, the
    contract the calibration images go through, and the generator's version.
    A cache that cannot be read or written is simply not used.
    """
    classes = model.state_dict()[model.classifier_key].shape[0]
    contract_key = hashlib.sha256(json.dumps(contract.at_size(CALIBRATION_SIZE).to_dict(), sort_keys=True).encode())
    name = f"{arch}-c{classes}-s{seed}-g{RANDOM_GENERATOR_VERSION}-{contract_key.hexdigest()[:12]}.pt"
    path = cache_dir() / "sdeploy-random" / name
    cached = _read_cached_state(path, model)
    if cached is not None:
        return cached
    values = random_state_dict(model, contract, seed)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(serialised(values))
    return values


def _read_cached_state(path: Path, model: nn.Module) -> dict[str, Tensor] | None:
    try:
        values = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # missing, unreadable or damaged: generate afresh
        return None
    expected = model.state_dict()
    if not isinstance(values, dict) or describe_mismatch(expected, values):
        return None
    return values


def serialised(obj: object) -> bytes:
    """``torch.save`` into memory: written to disk by Python, a full disk is an OSError, not an abort.

    torch's zip writer throws from a destructor when the disk fills up, which
    kills the process (SIGABRT) before any handler runs.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@torch.no_grad()
def _calibrate_batchnorm(model: nn.Module, contract: InputContract, seed: int) -> None:
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in batchnorms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, running stats == batch stats
    inputs = torch.from_numpy(random_inputs(CALIBRATION_IMAGES, contract, seed)).double()
    model.train()
    model(inputs)
    model.eval()
    _decorrelate_classifier(model, inputs)


#: Spread of the random head's logits, about what trained ImageNet heads produce.
TARGET_LOGIT_STD = 4.0


@torch.no_grad()
def _decorrelate_classifier(model: nn.Module, inputs: Tensor) -> None:
    """Remove the input-independent part of the logits.

    Pooled features of any network share a large common mean; a random
    classifier maps it to the same top class for every image, making top-1
    agreement meaningless.  Projecting the mean direction out of the weights
    leaves logits driven by what differs between images.
    """
    classifier = model.get_submodule(model.classifier_key.rsplit(".", 1)[0])
    captured = []
    handle = classifier.register_forward_hook(lambda m, i, o: captured.append(i[0]))
    try:
        model(inputs)
    finally:
        handle.remove()
    features = captured[0]
    mean = features.mean(0)
    weight = classifier.weight - torch.outer(classifier.weight @ mean, mean) / mean.dot(mean)
    spread = ((features - mean) @ weight.T).std()
    classifier.weight.copy_(weight * (TARGET_LOGIT_STD / spread))


#: Mean and spread of random BatchNorm betas (see random_state_dict: why positive).
BN_BETA_MEAN, BN_BETA_STD = 1.0, 0.2


def _random_values(key: str, shape: tuple[int, ...], rng: np.random.Generator, batchnorm: bool = True) -> np.ndarray:
    if len(shape) >= 2:  # conv / linear weight: variance-preserving for ReLU networks
        fan_in = int(np.prod(shape[1:]))
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    if key.endswith("bias"):
        return rng.normal(BN_BETA_MEAN, BN_BETA_STD, shape) if batchnorm else rng.normal(0.0, 0.2, shape)
    if key.endswith("weight"):
        return rng.uniform(0.6, 1.4, shape)  # BatchNorm gamma
    return np.zeros(shape)  # running statistics: measured by the calibration pass
