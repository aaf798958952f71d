"""Content digests of files, streamed: a multi-GB checkpoint is never read into memory at once."""

from __future__ import annotations

import hashlib
import os


def file_digest(path: str | os.PathLike, chars: int = 12) -> str:
    """The first ``chars`` hex digits of the file's sha256."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:chars]
