"""Masks and depth to 3D (no ROS): the back-projection, the eroded interior against edge and
flying pixels, invalid depth, too few points, intrinsics from camera_info, depth resizing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sam2_model import ObjectResult
from sam2_model.geometry import (
    DepthSettings,
    Intrinsics,
    check_depth,
    decode_depth,
    fit_depth,
    frame_geometry,
    object_geometry,
)

H, W = 480, 640
K = Intrinsics(fx=500.0, fy=400.0, cx=320.0, cy=240.0)


def rectangle(x0, y0, x1, y1) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    mask = np.zeros((H, W), bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask, (x0, y0, x1, y1)


def test_a_flat_object_at_two_metres():
    mask, box = rectangle(100, 50, 119, 59)  # 20 x 10 pixels
    depth = np.full((H, W), 2.0, np.float32)
    g = object_geometry(mask, box, depth, K, DepthSettings(erode_px=2))
    # the interior is columns 102..117 and rows 52..57: 96 points, centred on (109.5, 54.5)
    assert len(g.points) == 96
    assert g.position == pytest.approx(((109.5 - 320) * 2 / 500, (54.5 - 240) * 2 / 400, 2.0), abs=1e-6)
    # 5th..95th percentile of 16 equally weighted columns: 102..117; of 6 rows: 52..57
    assert g.size == pytest.approx((15 * 2 / 500, 5 * 2 / 400, 0.0), abs=1e-6)
    assert g.has_position


def test_edges_and_flying_pixels_do_not_count():
    mask, box = rectangle(200, 200, 239, 229)
    depth = np.full((H, W), 5.0, np.float32)  # the background
    depth[mask] = 1.5
    ring = mask.copy()
    ring[202:228, 202:238] = False  # the mask's outer two pixels: background and flying pixels
    depth[ring] = np.linspace(1.5, 5.0, ring.sum(), dtype=np.float32)
    eroded = object_geometry(mask, box, depth, K, DepthSettings(erode_px=2))
    assert eroded.position[2] == pytest.approx(1.5) and eroded.size[2] == 0.0
    whole = object_geometry(mask, box, depth, K, DepthSettings(erode_px=0))
    assert len(whole.points) == mask.sum() and whole.size[2] > 0.5  # the ring spreads it


def test_invalid_depth_is_left_out_and_too_few_points_give_no_position():
    mask, box = rectangle(10, 10, 29, 29)
    depth = np.full((H, W), 3.0, np.float32)
    depth[10:20, 10:30] = 0.0  # no reading
    depth[20:22, 10:30] = np.nan
    depth[22:24, 10:30] = np.inf
    depth[24:26, 10:30] = 12.0  # beyond depth_max
    g = object_geometry(mask, box, depth, K, DepthSettings(erode_px=0, max_depth=10.0))
    assert len(g.points) == 4 * 20 and g.position[2] == 3.0
    few = object_geometry(mask, box, depth, K, DepthSettings(erode_px=0, min_points=81))
    assert few.position is None and not few.has_position and few.size == (0.0, 0.0, 0.0) and len(few.points) == 80


def test_a_mask_at_the_image_border_and_an_eroded_away_mask():
    mask, box = rectangle(0, 0, 9, 9)  # the border counts as background for the erosion
    depth = np.full((H, W), 1.0, np.float32)
    g = object_geometry(mask, box, depth, K, DepthSettings(erode_px=2, min_points=1))
    assert len(g.points) == 6 * 6
    thin, box = rectangle(300, 100, 303, 160)  # 4 px wide: nothing left after 2 px of erosion
    assert len(object_geometry(thin, box, depth, K, DepthSettings(erode_px=2)).points) == 0


def test_frame_geometry_skips_empty_masks():
    mask, box = rectangle(100, 100, 139, 139)
    depth = np.full((H, W), 2.0, np.float32)
    empty = np.zeros((H, W), bool)
    objects = {
        1: ObjectResult(1, 0, mask, None, 3.0, 0.9, False, box, int(mask.sum())),
        2: ObjectResult(2, 0, empty, None, -3.0, 0.1, True, None, 0),
    }
    geometry = frame_geometry(objects, depth, K, DepthSettings())
    assert list(geometry) == [1] and geometry[1].position[2] == 2.0


def test_intrinsics_from_camera_info():
    k = [600.0, 0.0, 640.0, 0.0, 610.0, 360.0, 0.0, 0.0, 1.0]
    assert Intrinsics.from_camera_info(k, 1280, 720, (720, 1280)) == Intrinsics(600.0, 610.0, 640.0, 360.0)
    # the calibration of 1280x720 on a stream resized to 640x360: scaled
    assert Intrinsics.from_camera_info(k, 1280, 720, (360, 640)) == Intrinsics(300.0, 305.0, 320.0, 180.0)
    assert Intrinsics.from_camera_info(k, 0, 0, (360, 640)) == Intrinsics(600.0, 610.0, 640.0, 360.0)  # unknown
    for bad in ([0.0] * 9, [math.nan, 0, 1, 0, 1, 1, 0, 0, 1]):
        with pytest.raises(ValueError, match=r"camera_info\.k: fx="):
            Intrinsics.from_camera_info(bad, 640, 480, (480, 640))


def test_fit_depth_is_nearest_neighbour():
    small = np.arange(6, dtype=np.float32).reshape(2, 3)
    big = fit_depth(small, (4, 6))
    assert big.tolist() == [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
    assert fit_depth(small, (2, 3)) is small


# ---------------------------------------------------------------- depth images
@pytest.mark.parametrize("big_endian", [False, True])
def test_decode_16uc1_millimetres_with_padded_rows(big_endian):
    mm = np.array([[0, 1000, 65535], [1500, 250, 7]], np.uint16)
    rows = mm.astype(">u2" if big_endian else "<u2").view(np.uint8).reshape(2, 6)
    data = np.zeros((2, 8), np.uint8)  # 2 bytes of padding per row
    data[:, :6] = rows
    metres = decode_depth("16UC1", 2, 3, 8, data.tobytes(), big_endian)
    assert metres.dtype == np.float32
    assert metres.ravel().tolist() == pytest.approx([0.0, 1.0, 65.535, 1.5, 0.25, 0.007])


def test_decode_32fc1_metres():
    m = np.array([[1.25, np.nan], [np.inf, 0.0]], "<f4")
    out = decode_depth("32FC1", 2, 2, 8, m.tobytes(), False)
    assert out[0, 0] == 1.25 and np.isnan(out[0, 1]) and np.isinf(out[1, 0]) and out[1, 1] == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mono8", 2, 2, 2, bytes(4)), "depth: unsupported encoding 'mono8'; supported: 16UC1 \\(mm\\), 32FC1 \\(m\\)"),
        (("16UC1", 2, 2, 3, bytes(6)), "depth: step 3 is smaller than width\\*channels = 4"),
        (("32FC1", 2, 2, 8, bytes(15)), "depth: data has 15 bytes, expected step\\*height = 16"),
        (("16UC1", 0, 2, 4, b""), "depth: empty image"),
    ],
)
def test_bad_depth_images_name_the_field(args, message):
    with pytest.raises(ValueError, match=message):
        check_depth(*args[:4], len(args[4]))
    with pytest.raises(ValueError, match=message):
        decode_depth(*args, False)


def test_quantiles_are_numpy_percentiles():
    from sam2_model.geometry import _quantiles

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 20, 1001):
        rows = rng.normal(size=(3, n)).astype(np.float32)
        expected = np.percentile(rows.astype(np.float64), (5, 50, 95), axis=1)  # [3 qs, 3 rows]
        assert np.allclose(_quantiles(rows, (0.05, 0.5, 0.95)), expected, rtol=0, atol=1e-12), n
        assert np.allclose(_quantiles(rows, (0.5,))[0], np.median(rows.astype(np.float64), axis=1), atol=1e-12)
