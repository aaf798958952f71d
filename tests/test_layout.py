"""Rules of the house that the import graph can check: the core imports no stage and no command,
and the CLI starts (and the builder runs) without the heavy libraries.

The core is every module under ``streetsynth/`` except the command layer: ``streetsynth/commands/``
and its front door ``streetsynth/cli.py``, which exists to register the commands.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import streetsynth

CORE = Path(streetsynth.__file__).parent
STAGES = ("builders", "generators", "training", "cards")
FORBIDDEN = tuple(f"streetsynth.{p}" for p in (*STAGES, "commands"))
#: (module, imported module) pairs allowed until their issue moves them; each names its issue.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, name: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in module ``name`` names, at any depth (inside
    functions too), with relative imports resolved and ``from pkg import sub`` counted as ``pkg.sub``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def core_modules() -> list[Path]:
    return sorted(p for p in CORE.rglob("*.py")
                  if "commands" not in p.relative_to(CORE).parts and p != CORE / "cli.py")


def violations(path: Path, name: str | None = None) -> list[str]:
    name = name or module_name(path)
    return sorted(f"{name} imports {imp}" for imp in imported_names(path, name)
                  if imp.startswith(FORBIDDEN))


def test_the_checker_sees_imports_at_any_depth(tmp_path):
    """The walker catches absolute, relative, ``from pkg import sub`` and function-local imports."""
    fake = tmp_path / "probe.py"
    fake.write_text("from .. import cards\nimport os\n\ndef f():\n    from ..builders.waymo import build_real\n"
                    "    import streetsynth.training.maskrcnn\n    from streetsynth import commands\n")
    assert violations(fake, "streetsynth.models.probe") == [
        "streetsynth.models.probe imports streetsynth.builders.waymo",
        "streetsynth.models.probe imports streetsynth.builders.waymo.build_real",
        "streetsynth.models.probe imports streetsynth.cards",
        "streetsynth.models.probe imports streetsynth.commands",
        "streetsynth.models.probe imports streetsynth.training.maskrcnn",
    ]


def test_core_imports_no_stage_and_no_command():
    modules = core_modules()
    assert CORE / "schema.py" in modules and CORE / "models" / "detector.py" in modules
    assert [v for path in modules for v in violations(path)] == []


HEAVY = ("torch", "torchvision", "diffusers", "transformers")


@pytest.mark.parametrize("code", [
    "import streetsynth.cli as c; c.build_parser()",  # streetsynth --help and every command's parser
    "import streetsynth.builders.waymo, streetsynth.builders.summary",  # what `build`/`inspect` and workers run
])
def test_no_heavy_library_is_imported(code):
    """A fresh interpreter: nothing the test session imported can hide a heavy import."""
    probe = f"{code}; import sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == []


def stage_modules(stage: str) -> list[tuple[Path, str]]:
    """(path, module name) of every module of a stage folder (``generators/`` is ``streetsynth.generators``)."""
    folder = CORE.parent / stage
    return [(p, "streetsynth." + ".".join(p.relative_to(CORE.parent).with_suffix("").parts).removesuffix(".__init__"))
            for p in sorted(folder.rglob("*.py"))]


def stage_graph(modules: dict[str, list[tuple[Path, str]]]) -> dict[str, set[str]]:
    """Stage -> the other stages its modules import."""
    return {stage: {other for path, name in mods for imp in imported_names(path, name) for other in modules
                    if other != stage and (imp == f"streetsynth.{other}" or imp.startswith(f"streetsynth.{other}."))}
            for stage, mods in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop between stages, each as the path that closes it."""
    found = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                found.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:  # each loop once, from its smallest stage
                walk(nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def test_the_loop_finder_sees_a_loop_through_three_stages():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_loop_between_stages():
    modules = {stage: stage_modules(stage) for stage in STAGES}
    assert all(modules.values())
    assert cycles(stage_graph(modules)) == []


def test_no_command_imports_another():
    folder = CORE / "commands"
    found = []
    for path in sorted(folder.glob("*.py")):
        name = module_name(path)
        found += [(name, imp) for imp in imported_names(path, name)
                  if imp.startswith("streetsynth.commands.") and not imp.startswith(name)
                  and imp.count(".") == 2]
    assert sorted(set(found) - ALLOWED) == []


def test_version_constant_agrees_with_pyproject():
    import tomllib

    project = tomllib.loads((CORE.parent / "pyproject.toml").read_text())["project"]
    assert streetsynth.__version__ == project["version"]
