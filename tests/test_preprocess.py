"""The input contract implementation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shufflenet_deploy import SdeployError
from shufflenet_deploy.preprocess import (
    InputContract,
    denormalize,
    load_image,
    normalize,
    preprocess,
    random_images,
    resample_weights,
    resize_and_crop,
    resized_size,
)


def test_resample_rows_are_normalised_and_local():
    for n_in, n_out in [(400, 256), (100, 256), (7, 3), (256, 256)]:
        weights = resample_weights(n_in, n_out)
        np.testing.assert_allclose(weights.sum(1), 1.0)
        support = max(n_in / n_out, 1.0)
        assert (weights > 0).sum(1).max() <= 2 * support + 2


def test_identity_size_is_exact():
    np.testing.assert_allclose(resample_weights(64, 64), np.eye(64))


def test_shorter_side_resize_keeps_aspect_ratio_with_truncation():
    assert resized_size(640, 480, 256) == (341, 256)
    assert resized_size(480, 640, 256) == (256, 341)
    assert resized_size(300, 300, 232) == (232, 232)


def test_constant_image_stays_constant():
    image = np.full((300, 400, 3), (10, 200, 90), np.uint8)
    pixels = resize_and_crop(image, InputContract(img_size=64, resize_size=73))
    assert pixels.shape == (64, 64, 3)
    np.testing.assert_allclose(pixels, np.broadcast_to([10, 200, 90], pixels.shape), atol=1e-9)


def test_crop_is_centred_with_floor_offset():
    # A 1-pixel-wide bright column at x=50 of a 101-wide image, no resize (shorter side already 100).
    image = np.zeros((100, 101, 3), np.uint8)
    image[:, 50] = 255
    pixels = resize_and_crop(image, InputContract(img_size=64, resize_size=100))
    left = (101 - 64) // 2
    assert np.argmax(pixels[0, :, 0]) == 50 - left


def test_downscale_is_close_to_pillows_antialiased_bilinear():
    image = random_images(1, 97, seed=3)[0]
    ours = resize_and_crop(image, InputContract(img_size=40, resize_size=40))
    pil = np.asarray(Image.fromarray(image).resize((40, 40), Image.BILINEAR), dtype=np.float64)
    assert np.abs(ours - pil).mean() < 1.0  # Pillow rounds to uint8; ours stays float


def test_normalize_matches_the_formula_and_inverts():
    contract = InputContract(img_size=32, resize_size=32)
    pixels = np.random.default_rng(0).uniform(0, 255, (32, 32, 3))
    chw = normalize(pixels, contract)
    assert chw.dtype == np.float32 and chw.shape == (3, 32, 32)
    expected_red = (pixels[..., 0] / 255 - 0.485) / 0.229
    np.testing.assert_allclose(chw[0], expected_red, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(denormalize(chw[None], contract)[0].transpose(1, 2, 0), pixels, atol=1e-3)


def test_bgr_contract_reverses_channels_without_scaling():
    contract = InputContract(img_size=32, resize_size=32, mean=(0, 0, 0), std=(1, 1, 1), scale=1.0, color_order="BGR")
    pixels = np.zeros((32, 32, 3))
    pixels[..., 0] = 200  # red
    chw = normalize(pixels, contract)
    assert chw[2].max() == 200 and chw[0].max() == 0


def test_contract_at_other_sizes_keeps_the_crop_ratio():
    assert InputContract().at_size(112).resize_size == 128
    assert InputContract(resize_size=232).at_size(64).resize_size == 66
    with pytest.raises(SdeployError, match="--img-size 32 or more"):
        InputContract().at_size(16)


def test_contract_dict_round_trip():
    contract = InputContract(img_size=96, resize_size=110, color_order="BGR", mean=(1.0, 2.0, 3.0))
    assert InputContract.from_dict(contract.to_dict()) == contract


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").shape == (40, 20, 3)


def test_preprocess_accepts_paths_and_drops_alpha(tmp_path):
    rgba = np.zeros((50, 60, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[..., 3] = 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = preprocess(tmp_path / "a.png", InputContract(img_size=32, resize_size=36))
    np.testing.assert_allclose(out[1], (1 - 0.456) / 0.224, rtol=1e-5)
