"""Tests for pdr_tf.derender_metrics against closed forms: SIDE, MAD, erosion, light and view errors."""

import logging
import math

import numpy as np
import pytest

from pdr_tf import derender_metrics as dm


def _depth(seed=0, n=2, size=6):
    return np.random.default_rng(seed).uniform(0.9, 1.1, size=(n, size, size))


def test_side_is_zero_for_a_depth_scaled_by_a_constant():
    gt = _depth()
    mask = np.ones(gt.shape, dtype=bool)
    np.testing.assert_allclose(dm.side_per_image(1.7 * gt, gt, mask), 0.0, atol=1e-12)
    assert dm.side(gt, gt, mask) == pytest.approx(0.0, abs=1e-12)


def test_side_hand_computed():
    # Two masked pixels with log ratios 0 and ln 2: the standard deviation of {0, ln 2} is ln(2) / 2.
    gt = np.ones((1, 2, 2))
    pred = np.array([[[1.0, 2.0], [5.0, 9.0]]])
    mask = np.array([[[True, True], [False, False]]])
    assert dm.side_per_image(pred, gt, mask)[0] == pytest.approx(math.log(2) / 2)
    # Same as sqrt(mean(d^2) - mean(d)^2) for d = [0, ln 2]: sqrt(ln2^2 / 2 - ln2^2 / 4).
    assert dm.side(pred[0], gt[0], mask[0]) == pytest.approx(math.sqrt(math.log(2) ** 2 / 4))


def test_side_mean_over_images_and_background_zero_depth_is_ignored():
    gt = np.ones((2, 1, 3))
    gt[:, :, 2] = 0.0  # no object there: formats' ground truth depth is 0 outside the object
    pred = np.array([[[1.0, 2.0, -1.0]], [[3.0, 3.0, 0.0]]])
    mask = gt > 0
    per_image = dm.side_per_image(pred, gt, mask)
    np.testing.assert_allclose(per_image, [math.log(2) / 2, 0.0])
    assert dm.side(pred, gt, mask) == pytest.approx(math.log(2) / 4)


def test_side_empty_masks(caplog):
    gt = np.ones((2, 2, 2))
    mask = np.zeros(gt.shape, dtype=bool)
    mask[0] = True
    per_image = dm.side_per_image(2 * gt, gt, mask)
    assert per_image[0] == pytest.approx(0.0) and math.isnan(per_image[1])
    with caplog.at_level(logging.WARNING):
        assert dm.side(2 * gt, gt, mask) == pytest.approx(0.0)
    assert "1 of 2 images have an empty mask" in caplog.text
    with pytest.raises(ValueError, match="every image has an empty mask"):
        dm.side(gt, gt, np.zeros(gt.shape, dtype=bool))


def test_side_errors():
    gt = np.ones((1, 2, 2))
    mask = np.ones(gt.shape, dtype=bool)
    with pytest.raises(ValueError, match="depth_pred must be finite and positive"):
        dm.side(np.zeros_like(gt), gt, mask)
    with pytest.raises(ValueError, match="differ in shape"):
        dm.side(np.ones((1, 2, 3)), gt, mask)
    with pytest.raises(ValueError, match="mask has shape"):
        dm.side(gt, gt, np.ones((1, 3, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"must have shape \[N, H, W\]"):
        dm.side(np.ones(4), np.ones(4), np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        dm.side(gt, gt, np.full(gt.shape, 0.5))


def _normals(shape, vec):
    return np.broadcast_to(np.asarray(vec, dtype=np.float64), shape + (3,)).copy()


def test_mad_closed_forms():
    shape = (2, 3, 3)
    mask = np.ones(shape, dtype=bool)
    z = _normals(shape, [0, 0, 1])
    assert dm.mad(z, z, mask) == pytest.approx(0.0, abs=1e-12)
    assert dm.mad(z, _normals(shape, [1, 0, 0]), mask) == pytest.approx(90.0)
    assert dm.mad(z, _normals(shape, [0, 0, -1]), mask) == pytest.approx(180.0)
    # Lengths do not matter: [0, 0, 5] vs [2, 0, 2] is 45 degrees.
    assert dm.mad(5 * z, _normals(shape, [2, 0, 2]), mask) == pytest.approx(45.0)


def test_mad_masked_mean_per_image():
    z = _normals((1, 1, 2), [0, 0, 1])
    other = z.copy()
    other[0, 0, 1] = [0, 1, 0]  # 90 degrees off at the second pixel
    np.testing.assert_allclose(dm.mad_per_image(z, other, np.array([[[True, True]]])), [45.0])
    np.testing.assert_allclose(dm.mad_per_image(z, other, np.array([[[True, False]]])), [0.0], atol=1e-12)


def test_mad_errors():
    mask = np.ones((1, 2, 2), dtype=bool)
    z = _normals((1, 2, 2), [0, 0, 1])
    with pytest.raises(ValueError, match="zero-length"):
        dm.mad(np.zeros_like(z), z, mask)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        dm.mad(z[..., :2], z[..., :2], mask)
    # Zero normals outside the mask are fine.
    z_bg = z.copy()
    z_bg[0, 0, 0] = 0.0
    mask[0, 0, 0] = False
    assert dm.mad(z_bg, z, mask) == pytest.approx(0.0, abs=1e-12)


def test_erode_mask():
    mask = np.ones((5, 5), dtype=bool)
    once = dm.erode_mask(mask)
    assert once.shape == (5, 5) and once.dtype == bool
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:4, 1:4] = True  # the image border counts as background
    np.testing.assert_array_equal(once, expected)
    twice = dm.erode_mask(mask, pixels=2)
    assert twice.sum() == 1 and twice[2, 2]
    np.testing.assert_array_equal(dm.erode_mask(mask, pixels=0), mask)
    # A hole removes its 3x3 neighbourhood; batches are eroded image by image.
    batch = np.ones((2, 7, 7), dtype=np.uint8)
    batch[1, 3, 3] = 0
    out = dm.erode_mask(batch)
    assert out[0].sum() == 25 and out[1].sum() == 25 - 9
    with pytest.raises(ValueError, match="non-negative int"):
        dm.erode_mask(mask, pixels=-1)


def test_light_error():
    pred = np.array([[0.5, 0.5, 0.0, 0.0], [0.2, 0.4, 0.0, 0.0]])
    gt = np.array([[0.5, 0.7, 1.0, 0.0], [0.4, 0.4, 0.0, 0.0]])
    err = dm.light_error(pred, gt)
    assert err["ka_mae"] == pytest.approx(0.1)
    assert err["kd_mae"] == pytest.approx(0.1)
    assert err["lx_mae"] == pytest.approx(0.5)
    assert err["ly_mae"] == pytest.approx(0.0)
    # [0, 0, 1] vs normalize([1, 0, 1]): 45 degrees; the second sample 0 degrees.
    assert err["direction_deg"] == pytest.approx(22.5)
    np.testing.assert_allclose(dm.light_direction([[3.0, 4.0]]), [[3 / math.sqrt(26), 4 / math.sqrt(26),
                                                                    1 / math.sqrt(26)]])


def test_view_error_units():
    gt = np.zeros((2, 6))
    pred = np.array([[math.radians(10), 0, 0, 0.1, 0, 0], [0, math.radians(-20), math.radians(30), 0, 0.3, 0]])
    err = dm.view_error(pred, gt)
    assert err["rx_mae"] == pytest.approx(math.radians(5))
    assert err["tx_mae"] == pytest.approx(0.05)
    assert err["ty_mae"] == pytest.approx(0.15)
    # (5 + 10 + 15) / 3 degrees.
    assert err["rotation_mae_deg"] == pytest.approx(10.0)
    pred_deg = np.concatenate([np.degrees(pred[:, :3]), pred[:, 3:]], axis=1)
    deg = dm.view_error(pred_deg, gt, rotation_unit="degrees")
    assert deg["rx_mae"] == pytest.approx(5.0)
    assert deg["rotation_mae_deg"] == pytest.approx(10.0)


def test_param_errors():
    with pytest.raises(ValueError, match=r"light_pred must have shape \[N, 4\]"):
        dm.light_error(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="differ in shape"):
        dm.view_error(np.zeros((2, 6)), np.zeros((3, 6)))
    with pytest.raises(ValueError, match="non-finite"):
        dm.view_error(np.full((1, 6), np.nan), np.zeros((1, 6)))
    with pytest.raises(ValueError, match="rotation_unit"):
        dm.view_error(np.zeros((1, 6)), np.zeros((1, 6)), rotation_unit="turns")
