"""Files: the bottom layer every package builds on.

Which suffixes count as images, listing a folder's images, hashing, writing through a temporary
file and an atomic rename (a reader never sees half a file, an interrupted run never leaves one),
and the timestamp written into reports and manifests. Nothing here imports another advseg module.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = [
    "IMAGE_SUFFIXES",
    "NoImagesError",
    "is_image_file",
    "list_images",
    "sha256_file",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "utc_timestamp",
]

#: Every suffix (lower case) the project reads as an image, in any command.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm"})


class NoImagesError(ValueError):
    """A folder is missing, or holds no image files."""


def is_image_file(path: Path) -> bool:
    """A visible regular file with an image suffix (any case); hidden files are temporaries."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(
    folder: str | os.PathLike,
    error: type[Exception] = NoImagesError,
    missing: str = "{folder}: not a directory of images",
    empty: str = "{folder}: no images found (looked for {suffixes} directly in the folder)",
) -> list[Path]:
    """Image files directly in ``folder`` (not its subfolders), sorted by name.

    Upper-case suffixes count. A missing or empty folder raises ``error`` with the ``missing`` or
    ``empty`` message (``{folder}`` and ``{suffixes}`` filled in), so each command keeps its own
    exception type and wording.
    """
    root = Path(folder)
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    if not root.is_dir():
        raise error(missing.replace("{folder}", str(root)).replace("{suffixes}", suffixes))
    files = sorted(p for p in root.iterdir() if is_image_file(p))
    if not files:
        raise error(empty.replace("{folder}", str(root)).replace("{suffixes}", suffixes))
    return files


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (weights can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class atomic_path:
    """Context manager yielding a temporary path next to ``target``; renamed onto it on success.

    On an exception, or when nothing was written, the temporary file is removed and ``target`` is
    left as it was.

    >>> with atomic_path(out) as tmp:
    ...     write_something(tmp)
    """

    def __init__(self, target: str | os.PathLike, suffix: str | None = None):
        self.target = Path(target)
        self.suffix = suffix if suffix is not None else self.target.suffix

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=f".part{self.suffix}", dir=self.target.parent
        )
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and self.tmp.exists() and self.tmp.stat().st_size > 0:
            os.chmod(self.tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; behave like open()
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)
            if exc_type is None:
                raise OSError(f"nothing was written to {self.target}")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` through a temporary file and an atomic rename."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` through a temporary file and an atomic rename."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def utc_timestamp() -> str:
    """Now, in UTC, to the second, ISO 8601 (``2026-11-28T23:40:00+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
