"""De-rendering accuracy against ground truth (as in Unsup3D): SIDE, MAD, mask erosion, light and view errors.

Depth, normal and mask inputs are numpy arrays in the input view, batched [N, H, W] (a single [H, W] image is
treated as N = 1). The caller builds the evaluation mask the Unsup3D way: the ground-truth object mask and the
predicted reconstruction mask, each eroded by one pixel (`erode_mask`), combined with logical and. Normals come
from the renderer (`normals_from_depth` lives there); this module only compares them.
"""

import logging

import numpy as np

from pdr_tf import formats

_LOG = logging.getLogger(__name__)

LIGHT_KEYS = ("ka", "kd", "lx", "ly")
VIEW_KEYS = ("rx", "ry", "rz", "tx", "ty", "tz")


def _as_batch(x, name, trailing=0):
    x = np.asarray(x)
    rank = 2 + trailing
    if x.ndim == rank:
        x = x[None]
    if x.ndim != rank + 1:
        channels = ", 3" if trailing else ""
        raise ValueError(f"{name} must have shape [N, H, W{channels}] or [H, W{channels}], got {x.shape}")
    return x


def _check_mask(mask, shape):
    mask = _as_batch(mask, "mask")
    if mask.shape != shape:
        raise ValueError(f"mask has shape {mask.shape} but the images have shape {shape}")
    if mask.dtype != bool:
        if not np.all(np.isin(mask, (0, 1))):
            raise ValueError("mask must be boolean or hold only 0 and 1")
        mask = mask.astype(bool)
    return mask


def erode_mask(mask, pixels=1):
    """Erodes a binary mask with a 3x3 square, `pixels` times; outside the image counts as background.

    This matches Unsup3D's `avg_pool2d(mask, 3, stride=1, padding=1) > 0.99` (zero padding erodes the border).

    Args:
        mask: [N, H, W] or [H, W] bool (or 0/1) mask.
        pixels: erosion radius in pixels, >= 0.

    Returns:
        bool mask of the input's shape.
    """
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 0:
        raise ValueError(f"pixels must be a non-negative int, got {pixels!r}")
    squeeze = np.asarray(mask).ndim == 2
    mask = _as_batch(mask, "mask")
    out = _check_mask(mask, mask.shape)
    h, w = out.shape[1:]
    for _ in range(pixels):
        padded = np.pad(out, ((0, 0), (1, 1), (1, 1)), constant_values=False)
        eroded = np.ones_like(out)
        for dy in range(3):
            for dx in range(3):
                eroded &= padded[:, dy:dy + h, dx:dx + w]
        out = eroded
    return out[0] if squeeze else out


def _reduce_images(per_image, name):
    valid = np.isfinite(per_image)
    if not np.any(valid):
        raise ValueError(f"{name}: every image has an empty mask")
    if not np.all(valid):
        _LOG.warning("%s: %d of %d images have an empty mask and are left out of the mean", name,
                        int((~valid).sum()), per_image.size)
    return float(per_image[valid].mean())


def side_per_image(depth_pred, depth_gt, mask):
    """Scale-invariant depth error of each image.

    With d = log(depth_pred) - log(depth_gt) over the masked pixels: SIDE = sqrt(mean(d^2) - mean(d)^2), the
    standard deviation of the log ratio, so a prediction off by a constant factor scores 0.

    Args:
        depth_pred: [N, H, W] predicted depth in the input view (positive where masked).
        depth_gt: [N, H, W] ground-truth depth (positive where masked).
        mask: [N, H, W] bool, the pixels to evaluate.

    Returns:
        [N] float64 errors (log-depth units); NaN for images whose mask is empty.
    """
    depth_pred = _as_batch(depth_pred, "depth_pred").astype(np.float64)
    depth_gt = _as_batch(depth_gt, "depth_gt").astype(np.float64)
    if depth_pred.shape != depth_gt.shape:
        raise ValueError(f"depth_pred {depth_pred.shape} and depth_gt {depth_gt.shape} differ in shape")
    mask = _check_mask(mask, depth_pred.shape)
    for name, depth in (("depth_pred", depth_pred), ("depth_gt", depth_gt)):
        inside = depth[mask]
        if not np.all(np.isfinite(inside) & (inside > 0)):
            raise ValueError(f"{name} must be finite and positive inside the mask")
    d = np.where(mask, np.log(np.where(mask, depth_pred, 1.0)) - np.log(np.where(mask, depth_gt, 1.0)), 0.0)
    count = mask.sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.sum(axis=(1, 2)) / count
        # The centred form equals mean(d^2) - mean(d)^2 without its cancellation error.
        var = (np.where(mask, d - mean[:, None, None], 0.0) ** 2).sum(axis=(1, 2)) / count
    return np.sqrt(var)


def side(depth_pred, depth_gt, mask):
    """Mean SIDE over the images with a non-empty mask (see `side_per_image`). Returns a float."""
    return _reduce_images(side_per_image(depth_pred, depth_gt, mask), "side")


def _unit(v, name, where=None):
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    bad = ~(np.isfinite(norm[..., 0]) & (norm[..., 0] > 0))
    if where is not None:
        bad &= where
    if np.any(bad):
        raise ValueError(f"{name} has zero-length or non-finite vectors ({int(bad.sum())} of them)")
    return v / np.where(norm > 0, norm, 1.0)


def angle_between(u, v):
    """Angle between vectors along the last axis, in degrees (atan2 form: exact at 0 and 180)."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    cross = np.linalg.norm(np.cross(u, v), axis=-1)
    return np.degrees(np.arctan2(cross, (u * v).sum(axis=-1)))


def mad_per_image(normals_pred, normals_gt, mask):
    """Mean angle deviation between normal maps, per image.

    Args:
        normals_pred: [N, H, W, 3] predicted normals (normalized here, so any positive length works).
        normals_gt: [N, H, W, 3] ground-truth normals.
        mask: [N, H, W] bool, the pixels to evaluate.

    Returns:
        [N] float64 mean angles in degrees over the mask; NaN for images whose mask is empty.
    """
    normals_pred = _as_batch(normals_pred, "normals_pred", trailing=1).astype(np.float64)
    normals_gt = _as_batch(normals_gt, "normals_gt", trailing=1).astype(np.float64)
    if normals_pred.shape != normals_gt.shape or normals_pred.shape[-1] != 3:
        raise ValueError(f"normals_pred {normals_pred.shape} and normals_gt {normals_gt.shape} must both be "
                         "[N, H, W, 3]")
    mask = _check_mask(mask, normals_pred.shape[:-1])
    angles = angle_between(_unit(normals_pred, "normals_pred", mask), _unit(normals_gt, "normals_gt", mask))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, angles, 0.0).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))


def mad(normals_pred, normals_gt, mask):
    """Mean MAD (degrees) over the images with a non-empty mask (see `mad_per_image`). Returns a float."""
    return _reduce_images(mad_per_image(normals_pred, normals_gt, mask), "mad")


def _check_params(pred, gt, dim, what):
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    for name, x in ((f"{what}_pred", pred), (f"{what}_gt", gt)):
        if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
            raise ValueError(f"{name} must have shape [N, {dim}] with N >= 1, got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} has non-finite values")
    if pred.shape != gt.shape:
        raise ValueError(f"{what}_pred {pred.shape} and {what}_gt {gt.shape} differ in shape")
    return pred, gt


def light_direction(lxy):
    """Unit light direction normalize([lx, ly, 1]) from [..., 2] (lx, ly). Returns [..., 3]."""
    lxy = np.asarray(lxy, dtype=np.float64)
    v = np.concatenate([lxy, np.ones(lxy.shape[:-1] + (1,))], axis=-1)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def light_error(pred, gt):
    """Light errors: mean absolute error per component and mean angle between light directions.

    Args:
        pred: [N, 4] predicted (ka, kd, lx, ly), the `formats.GT_KEYS` light convention.
        gt: [N, 4] ground truth.

    Returns:
        dict with ka_mae, kd_mae, lx_mae, ly_mae (input units) and direction_deg (mean angle, degrees, between
        normalize([lx, ly, 1]) of pred and gt).
    """
    pred, gt = _check_params(pred, gt, formats.GT_LIGHT_DIM, "light")
    out = {f"{key}_mae": float(v) for key, v in zip(LIGHT_KEYS, np.abs(pred - gt).mean(axis=0))}
    out["direction_deg"] = float(angle_between(light_direction(pred[:, 2:4]), light_direction(gt[:, 2:4])).mean())
    return out


def view_error(pred, gt, rotation_unit="radians"):
    """View errors: mean absolute error per component.

    Args:
        pred: [N, 6] predicted (rx, ry, rz, tx, ty, tz); the `formats` ground truth uses radians.
        gt: [N, 6] ground truth in the same units.
        rotation_unit: "radians" or "degrees", the unit of rx, ry, rz in both inputs.

    Returns:
        dict with rx_mae ... tz_mae (input units) and rotation_mae_deg (the mean of the three rotation MAEs, in
        degrees). Angles are compared without wrapping: Unsup3D views stay within +-60 degrees.
    """
    if rotation_unit not in ("radians", "degrees"):
        raise ValueError(f"rotation_unit must be 'radians' or 'degrees', got {rotation_unit!r}")
    pred, gt = _check_params(pred, gt, formats.GT_VIEW_DIM, "view")
    errors = np.abs(pred - gt).mean(axis=0)
    out = {f"{key}_mae": float(v) for key, v in zip(VIEW_KEYS, errors)}
    rotation = errors[:3].mean()
    out["rotation_mae_deg"] = float(np.degrees(rotation) if rotation_unit == "radians" else rotation)
    return out
