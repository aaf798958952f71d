"""Step checkpoints shared by the trainers: ``OUT/checkpoints/step-NNNNNNNN/``.

A checkpoint is written into ``step-N.tmp`` and renamed into place with its ``trainer.json``
inside, so a folder named ``step-N`` holding ``trainer.json`` is always complete; a run killed
mid-write leaves only a ``.tmp`` folder (possibly holding a ``trainer.json`` already), which is
never taken for a checkpoint and is replaced by the next save. The new folder is fsynced before it
is renamed in and before anything older is removed. Older ones are pruned. A write that fails (a full
disk) names the checkpoint and leaves the complete ones untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from streetsynth.repo import fsync_dir, writing

CHECKPOINTS_DIR = "checkpoints"
TRAINER_FILE = "trainer.json"
STATE_FILE = "trainer_state.pt"
_COMPLETE = re.compile(r"step-(\d+)(\.old)?")


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint folder was written at."""
    return int(path.name.split("-")[1].removesuffix(".old"))


def complete_checkpoints(out: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``out``, oldest first."""
    root = Path(out) / CHECKPOINTS_DIR
    done = [p for p in root.glob("step-*") if _COMPLETE.fullmatch(p.name) and p.is_dir()
            and (p / TRAINER_FILE).exists()] if root.exists() else []
    # step-N.old counts only while its replacement step-N is not in place (a crash mid-swap).
    done = [p for p in done if not (p.name.endswith(".old") and p.with_name(p.name[:-4]).exists())]
    return sorted(done, key=checkpoint_step)


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    done = complete_checkpoints(out)
    return done[-1] if done else None


def staging_dir(out: str | Path, step: int) -> Path:
    """An empty ``step-N.tmp`` folder to write a checkpoint's files into."""
    tmp = Path(out) / CHECKPOINTS_DIR / f"step-{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


@contextmanager
def staged_checkpoint(out: str | Path, step: int) -> Iterator[Path]:
    """:func:`staging_dir` for a block that writes the checkpoint's files. A write that fails (a full disk:
    ``torch.save`` says so as a RuntimeError) is raised naming the checkpoint; the staging folder is removed
    and the complete checkpoints stay as they were, so a rerun resumes from the newest of them."""
    tmp = staging_dir(out, step)
    try:
        with writing(tmp, also=(RuntimeError,)):
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(path: Path) -> None:
    """Flush every file under ``path`` and the folders themselves to disk."""
    for item in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [path]:
        fd = os.open(item, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit_checkpoint(tmp: Path, record: dict[str, Any], keep: int) -> Path:
    """Write ``record`` as trainer.json, make ``tmp`` durable, swap it into place, keep the newest ``keep``.

    The new checkpoint is complete and fsynced before anything old is touched; a checkpoint of the
    same step already in place is renamed aside (``step-N.old``, still found by
    :func:`complete_checkpoints`) until the new one is renamed in, so a crash at any point leaves one.
    """
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    try:
        with writing(tmp):
            (tmp / TRAINER_FILE).write_text(json.dumps(record, indent=2) + "\n")
            _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never half a checkpoint: the complete ones stay as they are
        raise
    aside = final.with_name(final.name + ".old")
    shutil.rmtree(aside, ignore_errors=True)
    if final.exists():
        final.rename(aside)
    tmp.rename(final)
    fsync_dir(final.parent)
    shutil.rmtree(aside, ignore_errors=True)
    for old in complete_checkpoints(final.parent.parent)[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def trim_jsonl(path: str | Path, step: int) -> int:
    """Keep the records of a metrics file up to ``step`` (and drop a torn last line); records removed.

    A resumed run repeats the steps after its checkpoint, so their old records must go.
    """
    path = Path(path)
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(record.get("step", 0)) <= step:
            keep.append(line)
    if len(keep) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(f"{line}\n" for line in keep))
        tmp.replace(path)
    return len(lines) - len(keep)
