"""Shared test set-up: markers gated by flags, offline Hub, a cache per test, RNG restored."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="also run tests marked gpu")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow") or os.environ.get("RUN_SLOW") == "1"
    run_gpu = config.getoption("--run-gpu")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: pass --run-slow or RUN_SLOW=1"))
        if "gpu" in item.keywords and not run_gpu:
            item.add_marker(pytest.mark.skip(reason="gpu: pass --run-gpu on a CUDA machine"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own HF caches and no implicit token; RNG state is restored after."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets_cache"))
    import datasets

    # datasets reads the variable at import time, so patch its config as well.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        import torch

        torch_state = torch.random.get_rng_state()
    except ImportError:  # pragma: no cover
        torch = None
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    if torch is not None:
        torch.random.set_rng_state(torch_state)


# The producer chain (sample maker -> build_real -> tiny generate -> label), built once per session;
# see factories_producers. The folders are shared: a test that changes one copies it first.
@pytest.fixture(scope="session")
def produced_real():
    """The REAL repo ``build_real`` makes of the sample maker's segments (3 train, 3 validation frames)."""
    import factories_producers

    return factories_producers.real()


@pytest.fixture(scope="session")
def produced_synthetic(produced_real):
    """The synthetic version ``run_generation`` writes from it with the tiny inpainting model."""
    import factories_producers

    return factories_producers.synthetic()


@pytest.fixture(scope="session")
def produced_labelled(produced_synthetic):
    """That version labelled again by the tiny detector + SAM (``label_repo``)."""
    import factories_producers

    return factories_producers.labelled()
