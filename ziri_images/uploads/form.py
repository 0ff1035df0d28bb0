"""The multipart body of an edit: OpenAI's form fields and the reference images (and mask).

``hold_edit_body(key)`` comes first: before any of the body is read, its declared size is held
in the worker's budget for uploads, after the key's limits (``Limiter.hold_upload``,
``holds.py``), until the answer has been sent. Then ``read_edit_form(config)`` returns
the form's fields as a request body (the same fields a generation takes, numbers and booleans
converted from text) and the uploads, each checked by content (PNG, JPEG or WebP:
``imageinfo``) and bounded in count, per-file and total bytes (413 otherwise). Uploads are kept
in memory only for the length of the request (never written to a temporary file, never logged)
and sent on to the provider as they came.
"""

from dataclasses import dataclass

from flask import Request
from flask import after_this_request
from flask import current_app
from flask import g
from flask import request

from ..errors import ApiError
from ..schemas.request import form_integer
from . import EDIT_FORM_ROOM
from .imageinfo import NotAnImage
from .imageinfo import image_info

IMAGE_FIELDS = ("image", "image[]")
INTEGER_FIELDS = ("n", "output_compression", "partial_images", "seed", "safety_tolerance")
BOOLEAN_FIELDS = {name: {"true": True, "false": False} for name in ("stream", "prompt_upsampling")}
# Defaults: OpenAI accepts up to 16 reference images of up to 50 MB each for its GPT image models.
DEFAULT_LIMITS = {"EDIT_MAX_FILES": 16, "EDIT_MAX_FILE_BYTES": 50 * 1024 * 1024,
                  "EDIT_MAX_TOTAL_BYTES": 64 * 1024 * 1024}


class InMemoryRequest(Request):
    """Flask's request, but uploaded files stay in memory: no upload is ever written to disk."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        import io

        return io.BytesIO()


@dataclass(frozen=True)
class Upload:
    """One uploaded image: the form field it came in, its content, and what its header says."""

    field: str
    filename: str
    content: object  # a seekable binary stream
    size: int
    info: object  # imageinfo.ImageInfo

    def as_file(self):
        """Return the (filename, content bytes, content type) requests sends for it."""
        # The bytes, not the stream: requests would copy a stream's whole content with read() before
        # encoding the form (a third copy of every upload, beside the parsed one and the encoded body);
        # getvalue() hands over the parsed buffer itself.
        return self.filename, self.content.getvalue(), self.info.mime_type


def limits(config):
    return {name: int(config.get(name, default)) for name, default in DEFAULT_LIMITS.items()}


def edit_body_limit(config):
    """Return the most bytes an edit's body may have: its uploads, and room for the rest of the form."""
    return limits(config)["EDIT_MAX_TOTAL_BYTES"] + EDIT_FORM_ROOM


def hold_edit_body(limiter, key):
    """Hold the edit's body in the worker's budget for uploads before any of it is read, or raise.

    Held at its Content-Length (a chunked body at the most an edit may have) until its answer has
    been sent, a stream's last event included.
    """
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "An edit's body must be multipart/form-data.")
    request.max_content_length = edit_body_limit(current_app.config)
    size = request.content_length
    if size is not None and size > request.max_content_length:
        return  # the form parser refuses it (413) without keeping any of it
    hold = limiter.hold_upload(key, size if size is not None else request.max_content_length, g.request_id)

    @after_this_request
    def release_once_sent(response):
        response.call_on_close(hold.release)
        return response


def read_edit_form(config):
    """Return (body dict, [image Uploads], mask Upload or None) from the multipart request, or raise.

    The body must be held first (``hold_edit_body``), which also bounds its size.
    """
    bounds = limits(config)
    files = request.files
    body = _form_fields(request.form)
    entries = [(name, item) for name in IMAGE_FIELDS for item in files.getlist(name)]
    if not entries:
        raise ApiError(400, "MISSING_FIELDS", "An edit needs at least one image (image or image[]).",
                       missing=["image"])
    masks = files.getlist("mask")
    if len(entries) > bounds["EDIT_MAX_FILES"] or len(masks) > 1:
        raise ApiError(413, "TOO_MANY_IMAGES", f"At most {bounds['EDIT_MAX_FILES']} images and one mask.",
                       param="image", maximum=bounds["EDIT_MAX_FILES"])
    images = [_upload(name, item, bounds) for name, item in entries]
    mask = _upload("mask", masks[0], bounds) if masks else None
    total = sum(upload.size for upload in images) + (mask.size if mask else 0)
    if total > bounds["EDIT_MAX_TOTAL_BYTES"]:
        raise ApiError(413, "UPLOAD_TOO_LARGE", f"The uploads total {total} bytes; at most "
                       f"{bounds['EDIT_MAX_TOTAL_BYTES']} are accepted.", param="image",
                       maximum=bounds["EDIT_MAX_TOTAL_BYTES"])
    return body, images, mask


def _form_fields(form):
    """Return the text fields as a generation's JSON body would hold them."""
    body = {}
    for name in form:
        value = form.get(name)
        if name in INTEGER_FIELDS:
            value = form_integer(value)
        elif name in BOOLEAN_FIELDS:
            value = BOOLEAN_FIELDS[name].get(value.strip().lower(), value)
        body[name] = value
    return body


def _upload(field, item, bounds):
    stream = item.stream
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    if size > bounds["EDIT_MAX_FILE_BYTES"]:
        raise ApiError(413, "UPLOAD_TOO_LARGE", f"'{field}' is {size} bytes; at most {bounds['EDIT_MAX_FILE_BYTES']} "
                       "are accepted per file.", param=field, maximum=bounds["EDIT_MAX_FILE_BYTES"])
    try:
        info = image_info(stream)
    except NotAnImage as error:
        raise ApiError(400, "UNSUPPORTED_IMAGE_FORMAT", f"'{field}' is not a PNG, JPEG or WebP image ({error}).",
                       param=field)
    return Upload(field=field, filename=f"{field.rstrip('[]')}.{info.format}", content=stream, size=size, info=info)
