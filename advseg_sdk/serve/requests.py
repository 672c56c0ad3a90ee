"""Reading a colour request: the body (size limit before anything is decoded), its form, the
image (the SDK's checked decoder: pixel limit from the header, 415 / 400 for what is not an
image or is broken) and the colour hints. Every refusal is an :class:`ApiError`: an HTTP status,
a one-line reason and a metric label."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..hints import HintError
from ..imageio import ImageReadError, ImageTooLargeError, UnsupportedImageError, decode_image, open_image_bytes

__all__ = ["ApiError", "Upload", "read_body", "parse_upload", "decode_upload", "parse_hints_field", "decode_scribble"]

#: Form fields a colour request may have.
IMAGE_FIELDS = ("image", "file")
FORM_FIELDS = (*IMAGE_FIELDS, "hints", "scribble")
_MAX_HINT_POINTS = 10_000


class ApiError(Exception):
    """A request the service refuses: ``status``, a one-line ``message``, a metric ``reason``."""

    def __init__(self, status: int, message: str, reason: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())  # one line
        self.reason = reason
        self.headers = headers or {}


@dataclass
class Upload:
    """The parts of a colour request: the encoded image, and the raw hint fields if given."""

    image: bytes
    hints: str | None = None
    scribble: bytes | None = None


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes
    (from ``Content-Length`` before reading, else while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length {declared!r} is not a number", "bad_request") from None
        if n > limit:
            raise ApiError(413, f"request body of {n} bytes is over the limit of {limit} bytes", "body_too_large")
    from starlette.requests import ClientDisconnect

    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body is over the limit of {limit} bytes", "body_too_large")
            chunks.append(chunk)
    except ClientDisconnect:  # gone while sending: nobody to answer, and not the service's error
        raise ApiError(499, "the client disconnected while sending the request", "client_disconnected") from None
    return b"".join(chunks)


async def parse_upload(content_type: str, headers: Any, body: bytes) -> Upload:
    """A multipart form (fields ``image``, ``hints``, ``scribble``) or a bare image body."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return await _parse_multipart(headers, body)
    if kind.startswith("image/") or kind in ("application/octet-stream", ""):
        if not body:
            raise ApiError(
                400, "the request has no image: send it as the body or as the form field 'image'", "bad_request"
            )
        return Upload(body)
    raise ApiError(
        415,
        f"content type {kind!r} is not accepted; send multipart/form-data (field 'image') or the image bytes "
        "(image/png, image/jpeg, ...)",
        "unsupported_media",
    )


async def _parse_multipart(headers: Any, body: bytes) -> Upload:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> Any:
        yield body
        yield b""

    parser = MultiPartParser(headers, stream(), max_files=4, max_fields=8, max_part_size=1024 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart form: {exc.message}", "bad_request") from None
    except Exception as exc:  # python-multipart's own errors on broken framing
        raise ApiError(400, f"malformed multipart form: {exc}", "bad_request") from None
    try:
        unknown = sorted({k for k in form.keys() if k not in FORM_FIELDS})
        if unknown:
            raise ApiError(
                400,
                f"unknown form field(s) {', '.join(map(repr, unknown))}; expected {', '.join(FORM_FIELDS)}",
                "bad_request",
            )
        for name in (*FORM_FIELDS,):
            if len(form.getlist(name)) > 1:
                raise ApiError(400, f"form field {name!r} given more than once", "bad_request")
        image = next((form[f] for f in IMAGE_FIELDS if f in form), None)
        if image is None:
            raise ApiError(400, "the form has no image: add the file field 'image'", "bad_request")
        if not isinstance(image, UploadFile):
            raise ApiError(400, "form field 'image' must be a file upload, not text", "bad_request")
        hints = form.get("hints")
        if hints is not None and not isinstance(hints, str):
            hints = (await hints.read()).decode("utf-8", "replace")
        scribble = form.get("scribble")
        if scribble is not None and not isinstance(scribble, UploadFile):
            raise ApiError(400, "form field 'scribble' must be a file upload (an RGBA PNG)", "bad_request")
        return Upload(
            image=await image.read(),
            hints=hints if hints and hints.strip() else None,
            scribble=(await scribble.read()) or None if scribble is not None else None,
        )
    finally:
        await form.close()


def decode_upload(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """The image as uint8 RGB through the SDK's checked reader: 413 over the pixel limit (read
    from the header, before decoding), 415 not an image, 400 truncated or corrupt."""
    try:
        return decode_image(data, name, max_pixels=max_pixels)
    except ImageTooLargeError as exc:
        raise ApiError(413, str(exc), "too_many_pixels") from None
    except UnsupportedImageError as exc:
        raise ApiError(415, str(exc), "unsupported_media") from None
    except ImageReadError as exc:
        raise ApiError(400, str(exc), "bad_image") from None


def parse_hints_field(text: str) -> list[tuple[Any, Any, Any]]:
    """The ``hints`` field: a JSON list of ``{"x": .., "y": .., "color": "#rrggbb"}`` -> points
    for :func:`advseg_sdk.hints.parse_hints` (which checks values and bounds)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(422, f"form field 'hints' is not JSON ({exc})", "bad_hints") from None
    if not isinstance(data, list):
        raise ApiError(422, 'hints must be a JSON list of {"x": X, "y": Y, "color": "#rrggbb"}', "bad_hints")
    if len(data) > _MAX_HINT_POINTS:
        raise ApiError(422, f"{len(data)} hint points; at most {_MAX_HINT_POINTS}", "bad_hints")
    points = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or set(item) - {"x", "y", "color"} or not {"x", "y", "color"} <= set(item):
            raise ApiError(
                422, f'hints[{i}] = {json.dumps(item)[:80]} is not {{"x": X, "y": Y, "color": "#rrggbb"}}', "bad_hints"
            )
        points.append((item["x"], item["y"], item["color"]))
    return points


def decode_scribble(data: bytes, max_pixels: int) -> np.ndarray:
    """The ``scribble`` field: an RGBA PNG (alpha > 127 = hinted pixel, RGB its colour) -> RGBA uint8."""
    try:
        im = open_image_bytes(data, "scribble", max_pixels=max_pixels)
    except ImageTooLargeError as exc:
        raise ApiError(413, str(exc), "too_many_pixels") from None
    except ImageReadError as exc:
        raise ApiError(422, f"cannot read the scribble: {exc}", "bad_hints") from None
    try:
        if "A" not in im.getbands() and "transparency" not in im.info:
            raise ApiError(
                422,
                f"scribble: image mode {im.mode} has no alpha channel; send an RGBA PNG (alpha > 127 = hinted)",
                "bad_hints",
            )
        return np.ascontiguousarray(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    finally:
        im.close()


def hint_error(exc: HintError) -> ApiError:
    return ApiError(422, str(exc), "bad_hints")
