"""Pure conversions between the raw fields of a ``sensor_msgs/Image`` (or the format and bytes
of a ``sensor_msgs/CompressedImage``) and numpy arrays, and the per-object mask products
(label image, cropped masks, boxes). No ROS import.

Raw encodings are read as cv_bridge reads them (``cv_bridge/src/cv_bridge.cpp`` of ROS 2's
vision_opencv) and converted to RGB with OpenCV: ``yuv422``/``uyvy`` with
``COLOR_YUV2RGB_UYVY``, ``yuv422_yuy2``/``yuyv`` with ``COLOR_YUV2RGB_YUY2``, Bayer with the
``COLOR_Bayer??2RGB`` code OpenCV names after the second row's pattern, and ``mono16`` scaled
by 255/65535 to 8 bits in the byte order of the message's ``is_bigendian``."""

from __future__ import annotations

import cv2
import numpy as np

from sam2_model.image_bytes import check_rows, pixel_rows

__all__ = [
    "ENCODINGS",
    "box_from_roi",
    "check_compressed",
    "check_image",
    "crop_mask",
    "decode_compressed",
    "decode_image",
    "decode_mask",
    "label_image",
    "roi_from_bbox",
    "uncrop_mask",
]

# interleaved 8-bit encodings: encoding -> (channels, indices of R, G, B in a pixel)
_INTERLEAVED: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
    "8UC1": (1, (0, 0, 0)),
    "8UC3": (3, (0, 1, 2)),
}

# encodings OpenCV converts in one cvtColor: encoding -> (bytes per pixel, conversion code).
# cv_bridge: yuv422 (= uyvy) is UYVY, yuv422_yuy2 (= yuyv) is YUY2; OpenCV names a Bayer
# pattern after the second row's second and third pixels, so RGGB is "BG" and so on.
_CVT_COLOR: dict[str, tuple[int, int]] = {
    "yuv422": (2, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": (2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, cv2.COLOR_YUV2RGB_YUY2),
    "bayer_rggb8": (1, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": (1, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": (1, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": (1, cv2.COLOR_BayerGB2RGB),
}

_YUV422 = frozenset(("yuv422", "uyvy", "yuv422_yuy2", "yuyv"))  # one U and V per two pixels

# every supported raw encoding -> bytes per pixel
ENCODINGS: dict[str, int] = {
    **{name: channels for name, (channels, _) in _INTERLEAVED.items()},
    **{name: size for name, (size, _) in _CVT_COLOR.items()},
    "mono16": 2,
}


def check_image(encoding: str, height: int, width: int, step: int, size: int) -> None:
    """Whether an image message's fields can be decoded, without touching its ``size`` bytes
    of pixels (cheap: the node checks every frame it receives, and decodes only those it tracks).
    A row holds ``width`` times the encoding's bytes per pixel (:data:`ENCODINGS`; the
    "channels" of the messages): 2 for yuv422 and mono16, 1 for Bayer.

    Raises:
        ValueError: as :func:`decode_image`.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"image: unsupported encoding {encoding!r}; supported: {', '.join(sorted(ENCODINGS))}")
    check_rows("image", height, width, step, size, ENCODINGS[encoding])
    if encoding in _YUV422 and width % 2:
        raise ValueError(f"image: {encoding} needs an even width (one U and V per two pixels), got {width}")


def decode_image(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: bytes | bytearray | memoryview,
    is_bigendian: bool = False,
) -> np.ndarray:
    """An image message's fields -> RGB ``[H, W, 3]`` uint8: a read-only view of ``data`` for
    rgb8/8UC3 without row padding, a new array otherwise. ``is_bigendian`` (the message's
    field) is the byte order of mono16 pixels; 8-bit encodings ignore it, as cv_bridge does.

    Raises:
        ValueError: starting with ``image:``; unsupported encodings, empty images, a
            ``step``/``data`` size that does not match, an odd width for yuv422.
    """
    check_image(encoding, height, width, step, len(data))
    pixels = pixel_rows(height, width, step, data, ENCODINGS[encoding])
    if encoding in _INTERLEAVED:
        return _interleaved_to_rgb(pixels, _INTERLEAVED[encoding][1])
    if encoding == "mono16":
        return _mono16_to_rgb(pixels, is_bigendian)
    code = _CVT_COLOR[encoding][1]
    return cv2.cvtColor(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, code)


def _interleaved_to_rgb(pixels: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """``[H, W, C]`` uint8 with R, G, B at ``rgb`` -> ``[H, W, 3]``; no copy for unpadded RGB."""
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if rgb == (0, 1, 2) and pixels.shape[2] == 3 and pixels.flags.c_contiguous:
        pixels.flags.writeable = False  # the message's bytes: never written through
        return pixels
    return np.ascontiguousarray(pixels[:, :, list(rgb)])


def _mono16_to_rgb(pixels: np.ndarray, is_bigendian: bool) -> np.ndarray:
    """``[H, W, 2]`` bytes of 16-bit grey -> RGB uint8, scaled by 255/65535 and rounded
    (cv_bridge's mono16 -> rgb8)."""
    order = ">u2" if is_bigendian else "<u2"
    grey = np.ascontiguousarray(pixels).view(order)[:, :, 0].astype(np.uint16)  # native order
    return cv2.cvtColor(_to_8bit(grey), cv2.COLOR_GRAY2RGB)


def _to_8bit(image: np.ndarray) -> np.ndarray:
    """A 16-bit image -> 8 bits as cv_bridge scales it (``round(v * 255 / 65535)``)."""
    return cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)


# ---------------------------------------------------------------- CompressedImage
_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
_CODECS = frozenset(("jpeg", "jpg", "png"))
# encodings image_transport's compressed plugin treats as colour, i.e. whose channel order it reverts
_COLOUR = frozenset(("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"))


def _decoded_is_bgr(fmt: str) -> bool:
    """Whether a ``CompressedImage.format`` says that the decoded colour channels are in
    OpenCV's BGR order; ``ValueError`` unless it names jpeg (jpg) or png.

    image_transport writes ``"<encoding>; <codec> compressed <target>"`` (e.g. ``"rgb8; jpeg
    compressed bgr8"``), older publishers just ``"jpeg"``/``"png"``. As its subscriber does,
    the decoded pixels are BGR unless the original encoding is a colour one and the target is
    not ``bgr...``.
    """
    encoding, _, rest = fmt.partition(";") if ";" in fmt else ("", "", fmt)
    encoding, rest = encoding.strip(), rest.strip()
    if "compresseddepth" in rest.lower():
        raise ValueError(f"image: compressedDepth images are not supported (format {fmt!r})")
    if (rest.split()[0].lower() if rest else "") not in _CODECS:
        raise ValueError(f"image: unsupported compressed format {fmt!r}; supported: jpeg, png")
    return encoding not in _COLOUR or "compressed bgr" in rest


def _check_compressed(fmt: str, buf: np.ndarray) -> None:
    """JPEG or PNG data (by its signature) that ends with its end marker: OpenCV 4 decodes a
    truncated JPEG as a partly grey picture with a mere warning."""
    head, tail = buf[:8].tobytes(), buf[-64:].tobytes().rstrip(b"\x00")  # zero padding allowed
    if head.startswith(_JPEG_START):
        if not tail.endswith(_JPEG_END):
            raise ValueError(f"image: truncated JPEG data ({buf.size} bytes, no end marker; format {fmt!r})")
    elif head.startswith(_PNG_START):
        if not tail.endswith(_PNG_END):
            raise ValueError(f"image: truncated PNG data ({buf.size} bytes, no IEND chunk; format {fmt!r})")
    else:
        raise ValueError(f"image: {buf.size} bytes of compressed data are neither JPEG nor PNG (format {fmt!r})")


def check_compressed(format: str, data: bytes | bytearray | memoryview) -> None:
    """Whether a ``sensor_msgs/CompressedImage`` can be decoded, from its format string and
    its data's first and last bytes only (cheap: the node checks every frame it receives).

    Raises:
        ValueError: as :func:`decode_compressed`, except for damage inside the data.
    """
    _decoded_is_bgr(format)
    _check_compressed(format, np.frombuffer(data, dtype=np.uint8))


def decode_compressed(format: str, data: bytes | bytearray | memoryview) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage``'s ``format`` and ``data`` -> RGB ``[H, W, 3]`` uint8.

    JPEG and PNG, grey, colour or with alpha (dropped), 8 or 16 bits (scaled as mono16), decoded
    by OpenCV unchanged (image_transport's default ``mode``); the channel order follows
    ``format`` as image_transport's compressed subscriber reads it. The data's own signature
    decides JPEG or PNG, so a mislabelled but intact picture still decodes.

    Raises:
        ValueError: starting with ``image:``; an unknown format, data that is not JPEG/PNG,
            truncated or corrupt.
    """
    bgr = _decoded_is_bgr(format)
    buf = np.frombuffer(data, dtype=np.uint8)
    _check_compressed(format, buf)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise ValueError(f"image: corrupt compressed data ({buf.size} bytes, format {format!r}): {err}") from None
    if image is None or image.size == 0:
        raise ValueError(f"image: corrupt compressed data ({buf.size} bytes, format {format!r})")
    return _decoded_to_rgb(image, bgr, format)


def _decoded_to_rgb(image: np.ndarray, bgr: bool, fmt: str) -> np.ndarray:
    """``cv2.imdecode``'s ``[H, W]`` or ``[H, W, 3|4]`` uint8/uint16 -> RGB ``[H, W, 3]`` uint8."""
    if image.dtype == np.uint16:
        image = _to_8bit(image)
    elif image.dtype != np.uint8:
        raise ValueError(f"image: unsupported compressed pixel type {image.dtype} (format {fmt!r})")
    channels = 1 if image.ndim == 2 else image.shape[2]
    codes = {
        1: cv2.COLOR_GRAY2RGB,
        3: cv2.COLOR_BGR2RGB if bgr else None,
        4: cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB,
    }
    if channels not in codes:
        raise ValueError(f"image: unsupported number of compressed channels {channels} (format {fmt!r})")
    code = codes[channels]
    return np.ascontiguousarray(image) if code is None else cv2.cvtColor(image, code)


def decode_mask(
    encoding: str, height: int, width: int, step: int, data: bytes | bytearray | memoryview, image_hw: tuple[int, int]
) -> np.ndarray:
    """A mask image (mono8 / 8UC1, non-zero on the object) -> ``[H, W]`` bool.

    Raises:
        ValueError: starting with ``mask:``; another encoding or another size than the frame.
    """
    if encoding not in ("mono8", "8UC1"):
        raise ValueError(f"mask: expected encoding mono8, got {encoding!r}")
    if (height, width) != tuple(image_hw):
        raise ValueError(f"mask: size {width}x{height} differs from the frame's {image_hw[1]}x{image_hw[0]}")
    check_rows("mask", height, width, step, len(data), 1)
    return pixel_rows(height, width, step, data, 1)[:, :, 0] != 0


def label_image(masks: dict[int, np.ndarray], image_hw: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` uint8: each pixel the id of the object covering it (0: none). Where masks
    overlap, the higher id wins (``non_overlap_masks`` makes them disjoint)."""
    labels = np.zeros(image_hw, dtype=np.uint8)
    for obj_id in sorted(masks):
        labels[masks[obj_id]] = obj_id
    return labels


def crop_mask(mask: np.ndarray, bbox: tuple[int, int, int, int] | None) -> np.ndarray:
    """The mask inside its inclusive box as mono8 (255 inside, 0 outside); ``[0, 0]`` if empty."""
    if bbox is None:
        return np.zeros((0, 0), dtype=np.uint8)
    x0, y0, x1, y1 = bbox
    return np.where(mask[y0 : y1 + 1, x0 : x1 + 1], 255, 0).astype(np.uint8)


def uncrop_mask(crop: np.ndarray, roi: tuple[int, int, int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`crop_mask`: a crop (non-zero on the object, e.g. its mono8 255)
    at ``roi`` (x_offset, y_offset, width, height) -> the ``[H, W]`` bool mask of the frame."""
    mask = np.zeros(image_hw, dtype=bool)
    x, y, w, h = roi
    if w and h:
        mask[y : y + h, x : x + w] = crop[:h, :w] != 0
    return mask


def roi_from_bbox(bbox: tuple[int, int, int, int] | None) -> tuple[int, int, int, int]:
    """Inclusive ``(x0, y0, x1, y1)`` -> RegionOfInterest ``(x_offset, y_offset, width, height)``;
    all zero for no box."""
    if bbox is None:
        return 0, 0, 0, 0
    x0, y0, x1, y1 = bbox
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def box_from_roi(x_offset: int, y_offset: int, width: int, height: int) -> list[float]:
    """A RegionOfInterest prompt -> the tracker's box ``[x0, y0, x1, y1]``: its first and last
    pixel, inclusive. Whether the box lies inside the frame is the tracker's check (one rule
    for ROS and Python users, see ``sam2_model.prompts``).

    Raises:
        ValueError: starting with ``box:`` when the region is empty in one direction.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"box: width and height must both be positive, got {width}x{height}")
    return [float(x_offset), float(y_offset), float(x_offset + width - 1), float(y_offset + height - 1)]
