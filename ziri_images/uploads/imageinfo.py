"""An uploaded image's format and dimensions, read from its header bytes (never decoded).

PNG (the IHDR chunk), JPEG (the first start-of-frame marker, skipping the segments before it)
and WebP (its VP8, VP8L or VP8X chunk). The format is judged by content, never by file name or
declared type. ``image_info(stream)`` reads at most the bytes up to the dimensions and leaves
the stream where it was.
"""

import struct
from dataclasses import dataclass

FORMATS = ("png", "jpeg", "webp")
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers: every SOFn but DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_MAX_SEGMENTS = 1000  # a real file reaches its frame header in a few dozen


class NotAnImage(ValueError):
    """The bytes are not a PNG, JPEG or WebP image whose dimensions can be read."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int

    @property
    def mime_type(self):
        return MIME_TYPES[self.format]


def image_info(stream):
    """Return the ImageInfo of the image in the seekable binary ``stream``, or raise NotAnImage."""
    start = stream.tell()
    try:
        head = stream.read(32)
        if head.startswith(_PNG_SIGNATURE):
            info = _png(head)
        elif head.startswith(b"\xff\xd8"):
            info = _jpeg(stream, start)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            info = _webp(head)
        else:
            raise NotAnImage("not a PNG, JPEG or WebP image")
    finally:
        stream.seek(start)
    if info.width <= 0 or info.height <= 0:
        raise NotAnImage(f"the {info.format} header gives no dimensions")
    return info


def _png(head):
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise NotAnImage("PNG without an IHDR chunk")
    width, height = struct.unpack(">II", head[16:24])
    return ImageInfo("png", width, height)


def _jpeg(stream, start):
    stream.seek(start + 2)
    for _ in range(_JPEG_MAX_SEGMENTS):
        byte = stream.read(1)
        while byte == b"\xff":  # fill bytes may pad a marker
            byte = stream.read(1)
        if not byte:
            break
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # a marker without a length
        header = stream.read(2)
        if len(header) < 2:
            break
        length = struct.unpack(">H", header)[0]
        if marker in _JPEG_SOF:
            frame = stream.read(5)
            if len(frame) < 5:
                break
            height, width = struct.unpack(">HH", frame[1:5])
            return ImageInfo("jpeg", width, height)
        if length < 2 or marker in (0xD9, 0xDA):
            break  # end of image or start of scan before any frame header
        stream.seek(length - 2, 1)
        byte = stream.read(1)
        if byte != b"\xff":
            break
        stream.seek(-1, 1)
    raise NotAnImage("JPEG without a readable frame header")


def _webp(head):
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        return ImageInfo("webp", width, height)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return ImageInfo("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return ImageInfo("webp", width & 0x3FFF, height & 0x3FFF)
    raise NotAnImage("WebP without a VP8, VP8L or VP8X header")
