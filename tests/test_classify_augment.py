"""Classification augmentation: crop geometry, colour jitter, default crop scale, determinism per (seed, epoch, i)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from yolobone.data.classify import (IMAGENET_MEAN, IMAGENET_STD, JITTER_P, ClassifyAugment, ClassifyDataset,
                                  EvalTransform, color_jitter, crop_box, default_crop_scale)
from yolobone.engine.classify.options import ClassifyOptions
from yolobone.engine.classify.task import build_parser
from yolobone.engine.core.options import TrainConfigError

GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _image_files(tmp_path, n=4, size=(24, 40)):
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        f = tmp_path / f"{i}.png"
        cv2.imwrite(str(f), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        files.append((str(f), i % 2))
    return files


@pytest.mark.parametrize("imgsz, expected", [(32, 1.0), (64, 1.0), (128, 0.25), (224, 64 ** 2 / 224 ** 2),
                                             (640, 0.08)])
def test_default_crop_scale_keeps_a_64px_crop_within_yolov5_range(imgsz, expected):
    assert default_crop_scale(imgsz) == pytest.approx(expected, rel=1e-6)


def test_crop_box_area_and_ratio_stay_in_range():
    rng = np.random.default_rng(1)
    areas = []
    for _ in range(2000):
        top, left, h, w = crop_box(200, 300, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top <= 200 - h and 0 <= left <= 300 - w and h > 0 and w > 0
        areas.append(h * w / 60000)
        if (h, w) != (200, 266):  # not the fallback centre crop: ratio within range (up to pixel rounding)
            assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
    areas = np.array(areas)
    assert areas.min() < 0.1 and areas.max() > 0.8  # the whole range is drawn (a 4:3 crop covers <= 0.89 here)
    assert crop_box(32, 32, (1.0, 1.0), (3 / 4, 4 / 3), rng) == (0, 0, 32, 32)  # scale 1: the whole image


def test_color_jitter_matches_reference_formulas():
    """torchvision's formulas, rounded to uint8 after every step as albumentations' ColorJitter does on uint8."""
    im = np.random.default_rng(2).integers(0, 256, (6, 5, 3)).astype(np.uint8)
    seed = 3
    out = color_jitter(im, 0.4, np.random.default_rng(seed))
    assert out.dtype == np.uint8 and out.shape == im.shape
    rng = np.random.default_rng(seed)  # replay the draws with plain numpy formulas
    ref = im.astype(np.float64)
    for op in rng.permutation(3):
        f = rng.uniform(0.6, 1.4)
        grey = np.round(ref @ GREY)
        ref = [ref * f, ref * f + (1 - f) * grey.mean(), np.round(ref * f + (1 - f) * grey[..., None])][op]
        ref = np.floor(np.clip(ref, 0, 255))
    np.testing.assert_allclose(out, ref, atol=2)  # OpenCV's fixed-point grey and rounding: at most 2 levels apart


def test_train_augmentation_depends_only_on_seed_epoch_and_index(tmp_path):
    files = _image_files(tmp_path)
    aug = ClassifyAugment(scale=(0.08, 1.0))
    a = ClassifyDataset(files, 16, augment=True, aug=aug, seed=5)
    b = ClassifyDataset(files, 16, augment=True, aug=aug, seed=5)
    a.set_epoch(2), b.set_epoch(2)
    torch.manual_seed(123)  # global RNG state must not matter
    x = a[1][0]
    torch.manual_seed(456)
    np.random.seed(7)
    assert torch.equal(x, b[1][0]) and x.shape == (3, 16, 16) and x.dtype == torch.float32
    b.set_epoch(3)
    assert not torch.equal(x, b[1][0])


def test_colour_jitter_applies_to_about_half_the_images(tmp_path):
    files = _image_files(tmp_path, n=1, size=(16, 16))
    no_geo = ClassifyAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, jitter=0.4)
    ds = ClassifyDataset(files * 400, 16, augment=True, aug=no_geo)
    plain = EvalTransform(16)(cv2.cvtColor(cv2.imread(files[0][0]), cv2.COLOR_BGR2RGB))
    changed = np.mean([not torch.allclose(ds[i][0], plain, atol=1e-5) for i in range(len(ds))])
    assert abs(changed - JITTER_P) < 0.08


def test_eval_transform_centre_crops_and_normalises():
    im = np.zeros((20, 40, 3), np.uint8)
    im[:, 10:30] = 255  # the centred 20 x 20 square is white, the sides black
    x = EvalTransform(10)(Image.fromarray(im))
    white = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x.mean((1, 2)).numpy(), white, rtol=1e-5)
    assert x.shape == (3, 10, 10)


def test_crop_scale_default_follows_imgsz_and_flag_overrides():
    assert ClassifyOptions(imgsz=32).augment.scale == (1.0, 1.0)
    assert ClassifyOptions(imgsz=640).augment.scale == (0.08, 1.0)
    assert ClassifyOptions(imgsz=32, crop_scale=0.08).augment.scale == (0.08, 1.0)
    assert build_parser().parse_args([]).crop_scale is None
    with pytest.raises(TrainConfigError, match="--crop-scale"):
        ClassifyOptions.from_any({"crop_scale": 0.0})
