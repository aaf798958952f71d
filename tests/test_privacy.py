"""What `push` publishes carries no absolute path of the machine that made it.

Every kind of version the producers make (a built real repo, a generated version with a quality block,
a labelled one, occlude / rerender / ground versions) is pushed to the local test Hub server, and every
byte that arrived is searched: the raw files, the text inside Parquet (schema metadata and every value,
whatever the page compression) and the request bodies themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi, constants

import factories_producers as producers
from hub_server import FakeHub
from streetsynth import hub
from streetsynth.cli import main

TOKEN = "hf_privacytest0123456789abcdef"
TINY = ["--steps", "2", "--seed", "1"]
METHODS = {
    "occlude": ["--classes", "pedestrian", "vehicle", "--min-size", "4", "--size", "64"],
    "rerender": ["--iou-threshold", "0", "--min-kept", "0"],
    "ground": ["--num", "1", "--size", "64x128", "--sam", "none", "--iou-threshold", "0", "--min-area", "8",
               "--prompt", "a street with a car"],
}


def _needles(*folders: Path) -> set[bytes]:
    """The machine's absolute paths, as they would appear in a file: the folders the data was made in,
    the home folder and the working directory, each as given and resolved."""
    paths = {*folders, Path.home(), Path.cwd()}
    found = {str(p) for p in paths} | {str(p.resolve()) for p in paths}
    return {p.encode() for p in found if len(p) > 4}  # "/" or "/tmp" alone would name no machine


def _texts(path_in_repo: str, data: bytes) -> list[bytes]:
    """The bytes of an uploaded file and, for Parquet, its decoded values and metadata (page compression
    could hide a path from a plain byte search)."""
    out = [data]
    if path_in_repo.endswith(".parquet"):
        import io

        table = pq.read_table(io.BytesIO(data))
        meta = table.schema.metadata or {}
        out += [k + b"=" + v for k, v in meta.items()]
        out.append(b"\n".join(_values(table.to_pylist())))
    return out


def _values(value) -> list[bytes]:
    """Every string and bytes value inside nested rows, as bytes."""
    if isinstance(value, dict):
        return [b for v in value.values() for b in _values(v)]
    if isinstance(value, list):
        return [b for v in value for b in _values(v)]
    if isinstance(value, str):
        return [value.encode()]
    return [value] if isinstance(value, bytes) else []


def _skipping_build(tmp_path: Path) -> Path:
    """A real repo built under ``--on-error skip`` from the sample maker's segments plus a segment with a frame
    lacking FRONT_RIGHT and a 0-byte segment, captioned from a prompts file: its info.json names files."""
    from streetsynth.builders.sample import render_scene, scene_to_frame
    from streetsynth.tfrecord import write_tfrecord

    source = producers.copy_repo(producers.sample(3, 3, 0, (96, 144), 2), tmp_path / "waymo")  # real()'s call
    frames = [scene_to_frame(render_scene(k, (96, 144)), "badseg", 1000 + k, panoptic=False) for k in range(2)]
    del frames[1].images[1]
    write_tfrecord(source / "training" / "segment-badseg_with_camera_labels.tfrecord",
                   [f.SerializeToString() for f in frames])
    (source / "training" / "segment-empty_with_camera_labels.tfrecord").write_bytes(b"")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a wide street\n")
    out = tmp_path / "skipping"
    assert main(["build", "--source", str(source), "--out", str(out), "--size", "64x128", "--on-error", "skip",
                 "--captions", "manual", "--prompts", str(prompts)]) == 0
    return out


def test_pushed_versions_carry_no_local_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    real = producers.copy_repo(producers.real(), tmp_path / "real")
    repos = {"real": real, "skipping": _skipping_build(tmp_path), "synthetic": producers.copy_repo(producers.synthetic(), tmp_path / "store" / "v0.1.0"),
             "labelled": producers.copy_repo(producers.labelled(), tmp_path / "labelled" / "v0.1.0")}
    assert main(["quality", "--real", str(real), "--synthetic", str(repos["synthetic"]), "--tiny-features",
                 "--size", "32"]) == 0, capsys.readouterr().err
    for method, extra in METHODS.items():
        source = [] if method == "ground" else ["--real", str(real)]
        assert main([method, *source, "--out", str(tmp_path / method), *TINY, *extra]) == 0, capsys.readouterr().err
        repos[method] = tmp_path / method / "v0.1.0"

    with FakeHub(TOKEN) as server:
        monkeypatch.setattr(hub, "make_api", lambda: HfApi(endpoint=server.url, token=TOKEN))
        for name, folder in repos.items():
            version = ["--version", "0.1.0"] if name in ("real", "skipping") else []
            assert main(["push", str(folder), "--repo-id", f"me/{name}", *version]) == 0, capsys.readouterr().err
        uploaded = {(name, path): data for name in repos
                    for path, data in server.repos[f"me/{name}"].resolve("v0.1.0").files.items()}
        bodies = [r.body for r in server.requests]

    needles = _needles(tmp_path, producers.session_dir())
    assert {p for _, p in uploaded} >= {"README.md", "meta/info.json", "assets/samples.png", "meta/contact_sheet.png"}
    assert sum(p.endswith(".parquet") for _, p in uploaded) >= len(repos)
    leaks = [(name, path, needle.decode()) for (name, path), data in uploaded.items()
             for text in _texts(path, data) for needle in needles if needle in text]
    assert leaks == []
    assert not [needle for body in bodies for needle in needles if needle in body]
    info = json.loads(uploaded[("synthetic", "meta/info.json")])
    assert info["source"]["name"] == producers.real().name and "quality" in info  # the source is still named, by folder name
    built = json.loads(uploaded[("skipping", "meta/info.json")])  # and what was skipped, relative to it
    assert built["source"]["name"] == "waymo" and built["skipped"]["count"] == 1
    assert built["skipped"]["reasons"][0].startswith("waymo/training/segment-badseg_with_camera_labels.tfrecord@")
    assert built["configs"]["stitched"]["unreadable_segments"][0].startswith(
        "waymo/training/segment-empty_with_camera_labels.tfrecord: empty segment file")
    assert built["settings"]["prompts"].startswith("prompts.txt@sha256:")


@pytest.mark.parametrize("needle", ["/home/someone/data", "C:\\Users\\someone"])
def test_the_search_would_see_a_path_inside_compressed_parquet(tmp_path, needle):
    """The check above is not blind: a path held in a snappy-compressed column is found."""
    import pyarrow as pa

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"p": [needle * 50] * 20}), path, compression="snappy", write_statistics=False)
    data = path.read_bytes()
    assert needle.encode() * 50 not in data  # compression hides the repeats from a byte search
    assert any(needle.encode() * 50 in t for t in _texts("x.parquet", data))
