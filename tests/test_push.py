"""Pushing versions to a real HTTP server that speaks the Hub API (tests/hub_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants

from factories_cards import make_real_repo, make_synthetic_repo, rows
from hub_server import FakeHub
from streetsynth import hub
from streetsynth.cards.render import write_card
from streetsynth.cli import main
from streetsynth.hub import HubError, push, repo_files
from streetsynth.repo import read_info, shard_files, write_info

TOKEN = "hf_testsecret0123456789abcdef"


@pytest.fixture
def fake_hub():
    with FakeHub(TOKEN) as server:
        yield server


@pytest.fixture
def online(monkeypatch):
    """conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported; lift it for in-process pushes."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def api_for(server: FakeHub, token: str | None = TOKEN):
    return HfApi(endpoint=server.url, token=token)


def test_cli_push_versions_and_load_dataset_in_a_clean_process(tmp_path, fake_hub):
    """The CLI as a user runs it: HF_ENDPOINT and HF_TOKEN from the environment, no offline flag."""
    repo = make_synthetic_repo(tmp_path / "store" / "v0.1.0")
    driver = textwrap.dedent(f"""
        import datasets
        from streetsynth.cli import main
        for argv in (["push", {str(repo)!r}, "--repo-id", "me/streets"],
                     ["push", {str(repo)!r}, "--repo-id", "me/streets"],
                     ["versions", "--repo-id", "me/streets"],
                     ["versions", "--store", {str(repo.parent)!r}]):
            print("RC", argv[0], main(argv), flush=True)
        ds = datasets.load_dataset("me/streets", split="synthetic", revision="v0.1.0")
        print("LOADED", len(ds), ds[2]["id"], ds[2]["generation"]["model_revision"])
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_ENDPOINT=fake_hub.url, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf_home"),
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1,localhost", PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "RC push 0" in out and "RC push 2" in out and "RC versions 0" in out
    assert "already has v0.1.0" in out
    assert f"LOADED 3 {rows(repo, 'synthetic', 'synthetic')[2]['id']} seed-0" in out
    assert TOKEN not in out

    remote = fake_hub.repos["me/streets"]
    assert remote.private
    tagged = remote.resolve("v0.1.0")
    local = {p: f.read_bytes() for p, f in repo_files(repo)}
    assert set(tagged.files) == set(local) | {".gitattributes"}
    assert all(tagged.files[p] == b for p, b in local.items())
    assert set(local) >= {"README.md", "meta/info.json", "assets/samples.png",
                          *(f.relative_to(repo).as_posix() for f in shard_files(repo, "synthetic", "synthetic"))}
    assert tagged.oid == remote.branches["main"] and tagged.parent is not None
    assert tagged.summary == "streetsynth v0.1.0"
    assert 'revision="v0.1.0"' in tagged.files["README.md"].decode()
    assert all(TOKEN.encode() not in b for b in tagged.files.values())
    commits = [r for r in fake_hub.requests if r.method == "POST" and "/commit/" in r.path]
    assert len(commits) == 1 and commits[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert all(TOKEN.encode() not in r.body for r in fake_hub.requests)
    versions_out = out[out.index("RC push 2"):]
    assert "v0.1.0" in versions_out and read_info(repo)["fingerprint"] in versions_out and tagged.oid[:12] in versions_out


def test_public_only_when_asked_and_the_warning_is_printed(tmp_path, fake_hub, online, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(hub, "make_api", lambda: api_for(fake_hub))
    repo = make_real_repo(tmp_path / "real")
    assert main(["push", str(repo), "--repo-id", "me/private", "--version", "0.1.0"]) == 0
    assert "WARNING" not in capsys.readouterr().err
    assert main(["push", str(repo), "--repo-id", "me/public", "--public", "--version", "0.1.0"]) == 0
    captured = capsys.readouterr()
    assert "Waymo Open Dataset" in captured.err and "https://waymo.com/open/terms" in captured.err
    assert TOKEN not in captured.out + captured.err
    assert fake_hub.repos["me/private"].private and not fake_hub.repos["me/public"].private
    shards = {f.relative_to(repo).as_posix() for f in shard_files(repo, "stitched", "train")}
    assert shards and set(fake_hub.repos["me/public"].resolve("v0.1.0").files) >= shards


def test_large_push_is_split_and_resumes_after_a_failure(tmp_path, fake_hub, online):
    repo = make_real_repo(tmp_path / "real")
    write_card(repo)  # two shards and the sample sheet, each over 2 KB: at least three commits
    fake_hub.fail_commits = {2}
    logs: list[str] = []
    with pytest.raises(HubError, match="HTTP 500"):
        push(repo, "me/big", "0.1.0", api=api_for(fake_hub), commit_bytes=2_000, log=logs.append)
    remote = fake_hub.repos["me/big"]
    assert remote.tags == {} and len(remote.commits) == 2  # the initial commit and part 1 only
    done = set(remote.resolve("main").files)

    result = push(repo, "me/big", "0.1.0", api=api_for(fake_hub), commit_bytes=2_000, log=logs.append)
    parts = len(hub.plan_commits(repo_files(repo), 2_000))
    assert result.commits == parts >= 3 and logs[-1].endswith(f"(part {parts}/{parts})")
    tagged = remote.resolve("v0.1.0")
    assert tagged.oid == result.commit == remote.branches["main"]
    assert {p: b for p, b in tagged.files.items() if p != ".gitattributes"} == \
        {p: f.read_bytes() for p, f in repo_files(repo)}
    # the part that arrived before the failure was not sent again
    resent = [r.body for r in fake_hub.requests if "/commit/" in r.path][1:]
    for path in done - {".gitattributes"}:
        assert all(f'"path": "{path}"'.encode() not in body for body in resent)


def test_existing_version_refused_unless_forced_and_stale_files_removed(tmp_path, fake_hub, online):
    api = api_for(fake_hub)
    repo = make_real_repo(tmp_path / "real", n_train=5)
    built = read_info(repo)["fingerprint"]
    write_info(repo, {**read_info(repo), "version": "0.1.0"})
    first = push(repo, "me/r", api=api)
    with pytest.raises(ValueError, match="already has v0.1.0"):
        push(repo, "me/r", api=api)
    assert fake_hub.repos["me/r"].tags == {"v0.1.0": first.commit}

    # v0.2.0 has no validation shard: v0.1.0's must not leak into it
    second_shard = shard_files(repo, "stitched", "validation")[0]
    second_shard.unlink()
    second_shard = second_shard.relative_to(repo).as_posix()
    write_info(repo, {"kind": "real", "version": "0.2.0", "fingerprint": "realfp0002"})
    second = push(repo, "me/r", api=api)
    remote = fake_hub.repos["me/r"]
    assert second_shard in remote.resolve("v0.1.0").files
    assert second_shard not in remote.resolve("v0.2.0").files
    assert [(v["tag"], v["fingerprint"]) for v in hub.hub_versions("me/r", api=api)] == \
        [("v0.1.0", built), ("v0.2.0", "realfp0002")]

    write_info(repo, {"kind": "real", "version": "0.2.0", "fingerprint": "realfp0003"})
    moved = push(repo, "me/r", api=api, force=True)
    assert remote.tags["v0.2.0"] == moved.commit != second.commit
    with pytest.raises(ValueError, match="says version 0.2.0, not 0.3.0"):
        push(repo, "me/r", "0.3.0", api=api)


def test_pull_request_push_tags_the_pr_commit(tmp_path, fake_hub, online):
    repo = make_synthetic_repo(tmp_path / "v0.1.0")
    result = push(repo, "me/pr", api=api_for(fake_hub), create_pr=True)
    remote = fake_hub.repos["me/pr"]
    assert result.pr_revision == "refs/pr/1" and remote.pulls["refs/pr/1"] == result.commit
    assert remote.tags["v0.1.0"] == result.commit
    assert "README.md" not in remote.resolve("main").files


def test_clear_one_line_errors_without_network_token_or_version(tmp_path, fake_hub, monkeypatch):
    repo = make_synthetic_repo(tmp_path / "v0.1.0")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):  # conftest's offline flag is still on
        push(repo, "me/x", api=api_for(fake_hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(HubError, match=r"cannot reach the Hub at http://127.0.0.1:9 \(ConnectError\)"):
        push(repo, "me/x", api=HfApi(endpoint="http://127.0.0.1:9", token=TOKEN))
    with pytest.raises(HubError, match="HTTP 401") as err:
        push(repo, "me/x", api=api_for(fake_hub, token="hf_wrong"))
    assert "\n" not in str(err.value) and "hf_wrong" not in str(err.value)
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(HubError, match="no Hugging Face token"):
        push(repo, "me/x", api=api_for(fake_hub, token=None))
    info = json.loads((repo / "meta/info.json").read_text())
    info.pop("version")
    write_info(repo, info)
    with pytest.raises(ValueError, match="has no version"):
        push(repo, "me/x", api=api_for(fake_hub))


def test_versions_of_a_local_store(tmp_path, capsys):
    store = tmp_path / "store"
    make_synthetic_repo(store / "v0.1.0", version="0.1.0", fingerprint="aaaa1111")
    make_synthetic_repo(store / "v0.1.1", version="0.1.1", fingerprint="bbbb2222")
    assert main(["versions", "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines[1:]] == [["v0.1.0", "synthetic", "aaaa1111"],
                                                        ["v0.1.1", "synthetic", "bbbb2222"]]
    assert main(["versions", "--store", str(tmp_path / "none")]) == 0
    assert "no versions" in capsys.readouterr().out
    assert Path(lines[1].split()[-1]) == store / "v0.1.0"


def test_symlinks_leaving_the_repo_are_refused(tmp_path, fake_hub, online):
    repo = make_real_repo(tmp_path / "real")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the Hub")
    (repo / "data" / "notes.txt").symlink_to(secret)
    with pytest.raises(ValueError, match="outside the repo"):
        push(repo, "me/links", "0.1.0", api=api_for(fake_hub))
    assert "me/links" not in fake_hub.repos
    (repo / "data" / "notes.txt").unlink()
    (repo / "data" / "inside.md").symlink_to(repo / "README.md")  # a link inside the repo is fine
    push(repo, "me/links", "0.1.0", api=api_for(fake_hub))


def test_the_local_card_changes_only_after_a_successful_push(tmp_path, fake_hub, online):
    repo = make_real_repo(tmp_path / "real")
    before = (repo / "README.md").read_text()
    card = before.replace("---\n", "---\npretty_name: pushed card\n", 1)
    fake_hub.fail_commits = {1}
    with pytest.raises(HubError, match="HTTP 500"):
        push(repo, "me/card", "0.1.0", api=api_for(fake_hub), card=lambda repo_id: card)
    assert (repo / "README.md").read_text() == before
    assert not [p for p in repo.iterdir() if p.name.endswith(".tmp")]
    fake_hub.fail_commits = set()
    push(repo, "me/card", "0.1.0", api=api_for(fake_hub), card=lambda repo_id: card)
    assert (repo / "README.md").read_text() == card
    assert fake_hub.repos["me/card"].resolve("v0.1.0").files["README.md"].decode() == card
