"""Camera encodings and compressed images -> RGB (``sam2_ros.image_codec``), each compared
with a picture made by hand: the YUV bytes packed here and converted by the BT.601 formula
written out below, Bayer mosaics sampled here from known colours, PNG/JPEG files written by
Pillow (another library than the OpenCV decoder under test)."""

from __future__ import annotations

import array
import io

import numpy as np
import pytest
from PIL import Image as PILImage

from sam2_ros.image_codec import ENCODINGS, check_image, decode_compressed, decode_image

RNG = np.random.default_rng(33)


def _pad_rows(rows: np.ndarray, pad: int) -> tuple[int, bytes]:
    """``[H, row_bytes]`` uint8 -> (step, bytes) with ``pad`` junk bytes after each row."""
    h, row = rows.shape
    padded = np.full((h, row + pad), 0xAB, np.uint8)  # junk that must not leak into the picture
    padded[:, :row] = rows
    return row + pad, padded.tobytes()


# ---------------------------------------------------------------- YUV 4:2:2
def _bt601(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 video range YUV -> RGB, the formula written out; [H, W] each -> [H, W, 3]."""
    c, d, e = 1.164 * (y - 16.0), u - 128.0, v - 128.0
    rgb = np.stack([c + 1.596 * e, c - 0.391 * d - 0.813 * e, c + 2.018 * d], axis=-1)
    return np.clip(np.rint(rgb), 0, 255)


def _yuv_frame(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Legal video-range samples: Y [H, W] in 16..235, U and V [H, W/2] in 16..240."""
    return RNG.integers(16, 236, (h, w)), RNG.integers(16, 241, (h, w // 2)), RNG.integers(16, 241, (h, w // 2))


def _pack_422(y: np.ndarray, u: np.ndarray, v: np.ndarray, order: str) -> np.ndarray:
    """Two pixels in four bytes, in byte ``order`` ("UYVY" or "YUYV") -> ``[H, 2W]`` uint8."""
    h, w = y.shape
    planes = {"Y": (y[:, 0::2], y[:, 1::2]), "U": (u,), "V": (v,)}
    taken = {"Y": 0, "U": 0, "V": 0}
    packed = np.zeros((h, w // 2, 4), np.uint8)
    for i, name in enumerate(order):
        packed[:, :, i] = planes[name][taken[name]]
        taken[name] += 1
    return packed.reshape(h, 2 * w)


@pytest.mark.parametrize(
    ("encoding", "order"),
    [("yuv422", "UYVY"), ("uyvy", "UYVY"), ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")],
)
def test_yuv422_matches_the_bt601_formula(encoding, order):
    h, w = 6, 10
    y, u, v = _yuv_frame(h, w)
    step, data = _pad_rows(_pack_422(y, u, v, order), pad=6)
    rgb = decode_image(encoding, h, w, step, data)
    expected = _bt601(y, np.repeat(u, 2, axis=1), np.repeat(v, 2, axis=1))  # one U, V per pixel pair
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - expected).max() <= 2


def test_yuv422_grey_and_saturated_colours():
    """Pixel pairs (one U and V each) whose RGB is known by heart: video black and white, mid
    grey, BT.601's red."""
    y = np.array([[16, 235, 126, 126, 81, 81]])
    u = np.array([[128, 128, 90]])
    v = np.array([[128, 128, 240]])
    rgb = decode_image("uyvy", 1, 6, 12, _pack_422(y, u, v, "UYVY").tobytes())
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == rgb[0, 3].tolist() == [128, 128, 128]  # 1.164 * 110 = 128.0
    for r, g, b in rgb[0, 4:].tolist():  # 75.7 + 1.596 * 112 = 254.4; G -0.5, B -1.0: clipped
        assert r == 254 and g == 0 and b == 0


# ---------------------------------------------------------------- Bayer
def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample ``[H, W, 3]`` through a 2x2 colour filter ``pattern`` (e.g. "RGGB": R at (0, 0),
    G at (0, 1) and (1, 0), B at (1, 1)) -> ``[H, W]`` uint8."""
    raw = np.zeros(rgb.shape[:2], np.uint8)
    for (dy, dx), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern, strict=True):
        raw[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(colour)]
    return raw


BAYER = [("bayer_rggb8", "RGGB"), ("bayer_bggr8", "BGGR"), ("bayer_gbrg8", "GBRG"), ("bayer_grbg8", "GRBG")]


@pytest.mark.parametrize(("encoding", "pattern"), BAYER)
def test_bayer_constant_colour_is_exact(encoding, pattern):
    h, w = 6, 8
    colour = np.array([200, 90, 30], np.uint8)  # R, G and B all different: a swap shows
    step, data = _pad_rows(_mosaic(np.broadcast_to(colour, (h, w, 3)), pattern), pad=3)
    rgb = decode_image(encoding, h, w, step, data)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb, np.broadcast_to(colour, (h, w, 3)))


@pytest.mark.parametrize(("encoding", "pattern"), BAYER)
def test_bayer_linear_ramps_are_exact_inside(encoding, pattern):
    """Each channel a plane a + b*x + c*y: interpolating neighbours gives it back exactly, away
    from the one-pixel border."""
    h, w = 10, 12
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.stack([40 + 6 * xx + 4 * yy, 150 + 3 * xx - 5 * yy, 220 - 8 * xx - 2 * yy], axis=-1)
    step, data = _pad_rows(_mosaic(truth.astype(np.uint8), pattern), pad=5)
    rgb = decode_image(encoding, h, w, step, data).astype(int)
    assert np.array_equal(rgb[1:-1, 1:-1], truth[1:-1, 1:-1])


# ---------------------------------------------------------------- mono16, 8UC1, 8UC3
# 16-bit grey -> round(v * 255 / 65535) = round(v / 257), worked out by hand
MONO16 = [(0, 0), (128, 0), (129, 1), (257, 1), (385, 1), (386, 2), (32896, 128), (65407, 255), (65535, 255)]


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_is_scaled_to_8_bits_in_the_messages_byte_order(bigendian):
    values = [v for v, _ in MONO16]
    order = "big" if bigendian else "little"
    rows = [b"".join(v.to_bytes(2, order) for v in values) + b"\xab\xcd\xef" for _ in range(2)]  # padded
    rgb = decode_image("mono16", 2, len(values), 2 * len(values) + 3, b"".join(rows), is_bigendian=bigendian)
    expected = [[g, g, g] for _, g in MONO16]
    assert rgb.dtype == np.uint8 and rgb.tolist() == [expected, expected]


def test_mono16_read_in_the_other_byte_order_differs():
    data = (1).to_bytes(2, "big") + (256).to_bytes(2, "big")  # 0x0001, 0x0100
    assert decode_image("mono16", 1, 2, 4, data, is_bigendian=True)[0, :, 0].tolist() == [0, 1]
    assert decode_image("mono16", 1, 2, 4, data, is_bigendian=False)[0, :, 0].tolist() == [1, 0]  # 256, 1


def test_8uc1_8uc3_and_8_bit_encodings_ignore_is_bigendian():
    grey = np.array([[0, 7, 255]], np.uint8)
    assert decode_image("8UC1", 1, 3, 3, grey.tobytes()).tolist() == [[[0] * 3, [7] * 3, [255] * 3]]
    rgb = RNG.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    assert np.array_equal(decode_image("8UC3", 2, 3, 9, rgb.tobytes()), rgb)  # read as RGB
    for encoding in ("rgb8", "bgr8", "mono8", "bayer_rggb8"):
        c = ENCODINGS[encoding]
        data = RNG.integers(0, 256, 4 * 4 * c, dtype=np.uint8).tobytes()
        plain = decode_image(encoding, 4, 4, 4 * c, data)
        assert np.array_equal(decode_image(encoding, 4, 4, 4 * c, data, is_bigendian=True), plain)


def test_ros_message_buffers_are_accepted():
    """rclpy gives ``uint8[]`` as ``array.array('B')``."""
    y, u, v = _yuv_frame(2, 4)
    packed = _pack_422(y, u, v, "YUYV")
    a = decode_image("yuyv", 2, 4, 8, array.array("B", packed.tobytes()))
    assert np.array_equal(a, decode_image("yuyv", 2, 4, 8, packed.tobytes()))


# ---------------------------------------------------------------- sizes
BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "8UC1": 1,
    "8UC3": 3,
    "mono16": 2,
    "yuv422": 2,
    "uyvy": 2,
    "yuv422_yuy2": 2,
    "yuyv": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
}


def test_every_encoding_is_listed_with_its_bytes_per_pixel():
    assert ENCODINGS == BYTES_PER_PIXEL


@pytest.mark.parametrize("encoding", sorted(BYTES_PER_PIXEL))
def test_check_image_sizes(encoding):
    h, w, bpp = 3, 4, BYTES_PER_PIXEL[encoding]
    check_image(encoding, h, w, w * bpp, h * w * bpp)  # tight rows
    check_image(encoding, h, w, w * bpp + 7, h * (w * bpp + 7))  # padded rows
    decode_image(encoding, h, w, w * bpp + 7, bytes(h * (w * bpp + 7)))
    short = w * bpp - 1
    for args, message in [
        ((h, w, short, h * short), f"image: step {short} is smaller than width\\*channels = {w * bpp}"),
        ((h, w, w * bpp, h * w * bpp - 1), f"image: data has {h * w * bpp - 1} bytes, expected step\\*height"),
        ((0, w, w * bpp, 0), "image: empty image"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_image(encoding, *args)
        with pytest.raises(ValueError, match=message):
            decode_image(encoding, *args[:3], bytes(args[3]))


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_needs_an_even_width(encoding):
    with pytest.raises(ValueError, match=f"image: {encoding} needs an even width"):
        check_image(encoding, 2, 5, 10, 20)
    with pytest.raises(ValueError, match=f"image: {encoding} needs an even width"):
        decode_image(encoding, 2, 5, 10, bytes(20))


@pytest.mark.parametrize("encoding", ["nv12", "bayer_rggb16", "rgb16", "32FC1", "YUV422", ""])
def test_other_encodings_are_refused_by_name(encoding):
    with pytest.raises(ValueError, match=f"image: unsupported encoding '{encoding}'; supported: "):
        check_image(encoding, 2, 2, 8, 16)


# ---------------------------------------------------------------- CompressedImage
def _pillow(image: np.ndarray, codec: str, **options) -> bytes:
    """An RGB(A)/grey array written as a standard PNG/JPEG file by Pillow."""
    out = io.BytesIO()
    PILImage.fromarray(image).save(out, format=codec, **options)
    return out.getvalue()


def _smooth_rgb(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colour picture (JPEG keeps it within a few levels)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([60 + 2 * xx, 40 + 3 * yy, 200 - xx - yy], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    "fmt", ["png", "bgr8; png compressed bgr8", "rgb8; png compressed bgr8", "8UC3; png compressed"]
)
def test_png_colour_round_trip_is_exact(fmt):
    rgb = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    out = decode_compressed(fmt, _pillow(rgb, "PNG"))
    assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, rgb)


def test_png_grey_alpha_and_16_bit():
    grey = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    assert np.array_equal(decode_compressed("mono8; png compressed mono8", _pillow(grey, "PNG")), np.dstack([grey] * 3))
    rgba = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    assert np.array_equal(decode_compressed("rgba8; png compressed bgra8", _pillow(rgba, "PNG")), rgba[:, :, :3])
    values = np.array([[v for v, _ in MONO16]], np.uint16)
    png16 = _pillow(values, "PNG")  # Pillow writes uint16 arrays as 16-bit grey PNG
    out = decode_compressed("mono16; png compressed mono16", png16)
    assert out[0, :, 0].tolist() == [g for _, g in MONO16] and np.array_equal(out[..., 0], out[..., 2])


def test_rgb_target_is_read_as_image_transport_reads_it():
    """ "<colour>; png compressed rgb8" means the file's channels hold R, G, B in the slots a
    decoder calls B, G, R (image_transport does not swap them back): the picture comes out
    with red and blue exchanged relative to a standard file."""
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    out = decode_compressed("rgb8; png compressed rgb8", _pillow(rgb, "PNG"))
    assert np.array_equal(out, rgb[:, :, ::-1])


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8"])
def test_jpeg_colour_round_trip_within_jpeg_loss(fmt):
    rgb = _smooth_rgb()
    out = decode_compressed(fmt, _pillow(rgb, "JPEG", quality=95))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - rgb)
    assert diff.mean() < 2.0 and diff.max() <= 12


def test_jpeg_grey_round_trip():
    grey = _smooth_rgb()[:, :, 1]
    out = decode_compressed("mono8; jpeg compressed mono8", _pillow(grey, "JPEG", quality=95))
    assert out.shape == (*grey.shape, 3) and np.abs(out[..., 0].astype(int) - grey).max() <= 6


def test_jpeg_with_zero_padding_after_its_end_is_accepted():
    jpeg = _pillow(_smooth_rgb(), "JPEG", quality=90)
    assert decode_compressed("jpeg", jpeg + bytes(5)).shape == (48, 64, 3)


@pytest.mark.parametrize("cut", [10, 0.5, 0.9, -1, -2])
def test_truncated_jpeg_and_png_are_rejected(cut):
    """Found by their missing end (some libjpeg versions would decode a truncated JPEG as a
    partly grey picture)."""
    for codec, name in (("JPEG", "jpeg"), ("PNG", "png")):
        data = _pillow(_smooth_rgb(), codec)
        keep = int(len(data) * cut) if isinstance(cut, float) else cut % len(data)
        with pytest.raises(ValueError, match=rf"^image: truncated {codec} data \({keep} bytes"):
            decode_compressed(f"rgb8; {name} compressed bgr8", data[:keep])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage" * 20,
        bytes(100),
        b"\xff\xd8\xff" + bytes(50) + b"\xff\xd9",
        b"\x89PNG\r\n\x1a\n" + b"IEND\xaeB`\x82",
    ],
    ids=["empty", "text", "zeros", "jpeg-markers-only", "png-signature-only"],
)
def test_garbage_is_rejected(data):
    with pytest.raises(ValueError, match=r"^image: "):
        decode_compressed("jpeg", data)


@pytest.mark.parametrize(
    "fmt", ["", "tiff", "bgr8; webp compressed bgr8", "16UC1; compressedDepth png", "rgb8;", "bgr8; compressed"]
)
def test_unknown_formats_are_rejected(fmt):
    with pytest.raises(ValueError, match=r"^image: .*(unsupported compressed format|compressedDepth)"):
        decode_compressed(fmt, _pillow(_smooth_rgb(), "PNG"))


def test_damaged_data_never_raises_anything_but_value_error():
    """Flipped bytes anywhere in a JPEG or PNG: a picture of the right shape, or ValueError."""
    rng = np.random.default_rng(7)
    for codec, name in (("JPEG", "jpeg"), ("PNG", "png")):
        good = np.frombuffer(_pillow(_smooth_rgb(16, 24), codec), np.uint8)
        for _ in range(60):
            bad = good.copy()
            where = rng.integers(0, bad.size, 3)
            bad[where] = rng.integers(0, 256, 3)
            try:
                out = decode_compressed(name, bad.tobytes())
            except ValueError as err:
                assert str(err).startswith("image: ")
            else:
                assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
