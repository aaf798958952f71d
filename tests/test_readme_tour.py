"""The README's tour, run as written: every command block of "The tour, with real data", in order.

Only what must change for a test is substituted (real model names -> tiny random models, the GPU
-> the CPU, sizes and counts -> a small sample, the Hub -> a local server speaking its API); each
substitution must find its text, so a tour that drifts from this list fails here instead of
silently running something else.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import FakeHub
from streetsynth import repo
from streetsynth.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
TOKEN = "hf_tourtoken0123456789abcdef"

#: README text -> what the test runs instead; every key must occur in the tour.
SUBSTITUTE = {
    "make-sample --out waymo/": "make-sample --out waymo/ --segments 2 --frames 2 --size 96x144",
    "--size 512x1024": "--size 64x160",
    "--num-proc 4": "--num-proc 1",
    "vit_h:sam_vit_h_4b8939.pth": "tiny",
    "--device cuda": "--device cpu",
    # The tiny random model paints noise, which the seam gate rightly rejects: accept every fill here.
    "--model stabilityai/stable-diffusion-2-inpainting": "--model tiny --steps 2 --seam-threshold 1e9",
    "--detector DEFAULT": "--detector tiny",
    "--num 1000": "--num 3",
    "--batch-size 8": "--batch-size 3",
    "--arch v2": "--arch tiny --min-size 192 --max-size 480",  # 64x160 scenes: pedestrians matchable at 3x
    "--epochs 12": "--epochs 1 --seeds 2 --no-progress",
    "HF_TOKEN=...": f"HF_TOKEN={TOKEN}",
    "OWNER/NAME": "me/streets",
}


def tour_blocks() -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced block in the tour section, in order."""
    text = README.read_text()
    section = text[text.index("## The tour, with real data"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def substituted(blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    joined = "\n".join(body for _, body in blocks)
    unused = [k for k in SUBSTITUTE if k not in joined]
    assert not unused, f"the README tour no longer contains {unused}: update SUBSTITUTE with the tour"
    out = []
    for lang, body in blocks:
        for old, new in SUBSTITUTE.items():
            body = body.replace(old, new)
        out.append((lang, body))
    return out


def commands(body: str) -> list[list[str]]:
    """Shell lines of a bash block, continuations joined and comments dropped, as argv lists."""
    lines = body.replace("\\\n", " ").splitlines()
    return [argv for argv in (shlex.split(line, comments=True) for line in lines) if argv]


def run_tour(blocks, tmp_path: Path, hub: FakeHub | None, stop_after: str | None = None) -> list[str]:
    """Run the blocks in ``tmp_path``: streetsynth in this process, push and Python against the local Hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1,localhost",
               PYTHONPATH=os.getcwd() if "PYTHONPATH" not in os.environ else os.environ["PYTHONPATH"])
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    ran = []
    for lang, body in blocks:
        if lang == "python":
            proc = subprocess.run([sys.executable, "-c", body + "\nprint('ROWS', len(ds), ds[0]['id'])"],
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            ran.append(proc.stdout.strip())
            continue
        for argv in commands(body):
            if argv[0] == "export":
                key, _, value = argv[1].partition("=")
                env[key] = value
                continue
            assert Path(argv[0]).name == "streetsynth", argv
            if argv[1] == "push":  # reads HF_ENDPOINT/HF_TOKEN from its environment, as a user's shell has them
                proc = subprocess.run([sys.executable, "-m", "streetsynth.cli", *argv[1:]], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=300)
                assert proc.returncode == 0, proc.stdout + proc.stderr
            else:
                rc = main(argv[1:]) if argv[1:] != ["--help"] else _help()
                assert rc == 0, f"{' '.join(argv)} exited {rc}"
            ran.append(argv[1])
            if argv[1] == stop_after:
                return ran
    return ran


def _help() -> int:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    return done.value.code


def _masked(folder: Path, config: str, split: str) -> dict[str, int]:
    """``mask_source`` counts of a version's rows, read back with ``load_dataset`` as a user would."""
    counts: dict[str, int] = {}
    for row in repo.load_split(folder, config, split):
        for obj in row["objects"]:
            counts[obj["mask_source"] or "none"] = counts.get(obj["mask_source"] or "none", 0) + 1
    return counts


def test_tour_up_to_generate_gives_fully_masked_versions(tmp_path, monkeypatch):
    """The fast part: the sample, the build, the box-prompted labels, the synthetic version and its card."""
    monkeypatch.chdir(tmp_path)
    ran = run_tour(substituted(tour_blocks()), tmp_path, None, stop_after="card")
    assert ran == ["--help", "make-sample", "inspect", "build", "label", "generate", "card"]
    assert _masked(tmp_path / "real", "stitched", "train").get("none", 0) > 0  # the build leaves box-only objects
    for folder, config, splits in ((tmp_path / "real-masks" / "v0.1.0", "stitched", ("train", "validation")),
                                   (tmp_path / "synthetic" / "v0.1.0", "synthetic", ("synthetic",))):
        for split in splits:
            counts = _masked(folder, config, split)
            assert "none" not in counts and counts.get("sam-box", 0) > 0, (folder, split, counts)
    info = json.loads((tmp_path / "synthetic" / "v0.1.0" / "meta" / "info.json").read_text())
    rows = repo.load_split(tmp_path / "synthetic" / "v0.1.0", "synthetic", "synthetic")
    assert info["counts"]["accepted"] == len(rows) > 0
    assert info["counts"]["accepted"] + info["counts"]["failed_samples"] == 3


@pytest.mark.slow
def test_the_whole_tour_runs_as_written(tmp_path, monkeypatch):
    """Every block to the end: training on the mixes, the push, and loading the pushed version back."""
    monkeypatch.chdir(tmp_path)
    with FakeHub(TOKEN) as hub:
        ran = run_tour(substituted(tour_blocks()), tmp_path, hub)
        assert "me/streets" in hub.repos
    rows = repo.load_split(tmp_path / "synthetic" / "v0.1.0", "synthetic", "synthetic")
    assert ran == ["--help", "make-sample", "inspect", "build", "label", "generate", "card", "train", "push",
                   f"ROWS {len(rows)} {rows[0]['id']}"]  # the pushed version loads back from the Hub, as written
    results = (tmp_path / "runs" / "compare" / "results.json").read_text()
    assert all(f'"{mix}"' in results for mix in ("real=1", "real=1,synthetic=0.5", "synthetic=1"))
