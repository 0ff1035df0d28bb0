"""Image format and dimensions from the header bytes: PNG, JPEG, WebP; anything else refused."""

import io
import struct

import pytest

from ziri_images.dev.stub import png_bytes
from ziri_images.uploads.imageinfo import NotAnImage
from ziri_images.uploads.imageinfo import image_info


def jpeg(width, height, exif_bytes=100):
    app1 = b"\xff\xe1" + struct.pack(">H", exif_bytes + 2) + b"E" * exif_bytes
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app1 + b"\xff\xff" + sof0 + b"\xff\xda\x00\x02" + b"\x00" * 64 + b"\xff\xd9"


def webp(chunk, payload):
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_vp8x(width, height):
    return webp(b"VP8X", b"\x00" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def webp_vp8l(width, height):
    bits = (width - 1) | (height - 1) << 14
    return webp(b"VP8L", b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 8)


def webp_vp8(width, height):
    return webp(b"VP8 ", b"\x00" * 3 + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8)


@pytest.mark.parametrize("data, expected", [
    pytest.param(png_bytes("x", size=37), ("png", 37, 37), id="png"),
    pytest.param(jpeg(1536, 1024), ("jpeg", 1536, 1024), id="jpeg"),
    pytest.param(jpeg(640, 480, exif_bytes=60_000), ("jpeg", 640, 480), id="jpeg-large-exif"),
    pytest.param(webp_vp8x(4000, 3000), ("webp", 4000, 3000), id="webp-extended"),
    pytest.param(webp_vp8l(1024, 768), ("webp", 1024, 768), id="webp-lossless"),
    pytest.param(webp_vp8(800, 600), ("webp", 800, 600), id="webp-lossy"),
])
def test_dimensions_come_from_the_header(data, expected):
    stream = io.BytesIO(data)
    stream.seek(0)
    info = image_info(stream)
    assert (info.format, info.width, info.height) == expected
    assert stream.tell() == 0  # left where it was, for the upload


@pytest.mark.parametrize("data", [
    pytest.param(b"GIF89a" + b"\x00" * 40, id="gif"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, id="truncated-png"),
    pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF", id="jpeg-without-frame"),
    pytest.param(b"\xff\xd8" + b"\xff\xe1\xff\xff", id="jpeg-segment-past-the-end"),
    pytest.param(webp(b"ABCD", b"\x00" * 20), id="webp-unknown-chunk"),
    pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", id="svg"),
    pytest.param(png_bytes("x")[:16] + b"\x00" * 8, id="png-zero-size"),
])
def test_anything_else_is_not_an_image(data):
    with pytest.raises(NotAnImage):
        image_info(io.BytesIO(data))
