"""Bad input cases of issue 25 that no other test file holds: a clear refusal, and nothing written."""

from __future__ import annotations

import os

import pytest

import factories_producers as producers
from streetsynth.cli import main


@pytest.mark.parametrize("where", [".", "store", "store/../labels"])
def test_label_refuses_an_output_store_in_its_source(tmp_path, capsys, where):
    real = producers.copy_repo(producers.real(), tmp_path / "real")
    before = sorted(str(p.relative_to(real)) for p in real.rglob("*"))
    assert main(["label", "--data", str(real), "--out", os.path.join(real, where)]) == 2
    err = capsys.readouterr().err
    assert "is the source repo --data" in err and "write the new version into another store folder" in err
    assert sorted(str(p.relative_to(real)) for p in real.rglob("*")) == before
