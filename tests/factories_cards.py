"""Real and synthetic repos for the card and push tests, made by the producers (:mod:`factories_producers`).

What a test asserts about them it reads from the repo itself (rows, ``meta/info.json``), so the
known answers are what the builder and the generator wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import factories_producers as producers
from factories_producers import class_counts, rows  # noqa: F401  (re-exported for the card tests)
from streetsynth import repo


def make_real_repo(path: Path, n_train: int = 5, n_val: int = 3) -> Path:
    """A real repo built by ``build_real``: ``stitched`` train (``n_train`` rows) and validation (``n_val``)."""
    return producers.copy_repo(producers.real(n_train, n_val), path)


def make_synthetic_repo(path: Path, n: int = 3, version: str | None = None, fingerprint: str | None = None) -> Path:
    """A synthetic version written by ``run_generation`` (``n`` rows); ``version`` and ``fingerprint``
    restate its info as another version of the same store would have them."""
    path = producers.copy_repo(producers.synthetic(n), path)
    if version or fingerprint:
        info = json.loads((path / repo.INFO_PATH).read_text())
        info.update({k: v for k, v in (("version", version), ("fingerprint", fingerprint)) if v})
        repo.write_info(path, info)
    return path
