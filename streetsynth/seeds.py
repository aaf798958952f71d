"""Derived randomness: every seed comes from (run seed, sample id, attempt), never global state."""

from __future__ import annotations

import hashlib


def derive_seed(run_seed: int, sample_id: str, attempt: int = 0) -> int:
    """A 63-bit seed that depends only on its inputs, stable across processes and machines."""
    digest = hashlib.blake2b(f"{int(run_seed)}|{sample_id}|{int(attempt)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)
