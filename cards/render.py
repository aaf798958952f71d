"""Dataset cards rendered from the dataset itself: metadata from ``meta/info.json``, numbers from
the Parquet shards, a sample sheet drawn from the first rows.

The card is the Jinja template ``templates/dataset_card.md`` filled through
``DatasetCard.from_template(card_data=DatasetCardData(...))``. Nothing is written by hand and
nothing depends on the clock, so the same dataset always gives the same card.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData
from PIL import Image

from streetsynth import repo as repo_layout
from streetsynth.cards.contact_sheet import Tile, render_sheet
from streetsynth.instances import Instances
from streetsynth.schema import CLASS_NAMES, PAIRS, STITCHED, SYNTHETIC
from streetsynth.versions import version_tag

from .stats import dataset_stats, generation_stats, shard_files, size_category

TEMPLATE_PATH = Path(__file__).parent / "templates" / "dataset_card.md"
SAMPLES_PATH = "assets/samples.png"
WAYMO_TERMS_URL = "https://waymo.com/open/terms"
LICENSE_NAME = "waymo-open-dataset-non-commercial"
#: Placeholder in load snippets when the card is rendered without a Hub repo id.
REPO_ID_PLACEHOLDER = "OWNER/NAME"


def default_config(repo: str | Path, info: dict[str, Any], configs: dict[str, dict[str, str]]) -> str | None:
    """The config marked default: the one the README already marks, else by kind."""
    meta, _ = repo_layout.split_front_matter((Path(repo) / repo_layout.README_PATH).read_text()) \
        if (Path(repo) / repo_layout.README_PATH).exists() else ({}, "")
    marked = [c.get("config_name") for c in meta.get("configs") or [] if c.get("default")]
    if marked and marked[0] in configs:
        return marked[0]
    preferred = SYNTHETIC if info.get("kind") == "synthetic" else STITCHED
    return preferred if preferred in configs else next(iter(configs), None)


def render_samples(repo: str | Path, config: str, split: str, n: int = 6, tile_width: int = 256) -> Path | None:
    """Draw the first ``n`` rows of ``config``/``split`` with their masks into ``assets/samples.png``."""
    files = shard_files(repo, config, split)
    if not files or "image" not in pq.read_schema(files[0]).names:
        return None
    rows: list[dict[str, Any]] = []
    for f in files:
        rows += pq.read_table(f, columns=["id", "image", "width", "height", "objects", "instance_mask"]
                              ).slice(0, n - len(rows)).to_pylist()
        if len(rows) >= n:
            break
    if not rows:
        return None
    tiles = []
    for row in rows:
        image = Image.open(io.BytesIO(row["image"]["bytes"]) if row["image"].get("bytes") else row["image"]["path"])
        tiles.append(Tile(image, title=row["id"], instances=Instances.from_row(row)))
    return render_sheet(tiles, Path(repo) / SAMPLES_PATH, columns=min(3, len(tiles)), tile_width=tile_width,
                        heading=f"{config}/{split}: first {len(tiles)} rows")


#: The generation counts the card states, as ``run_generation`` writes them in ``info.json``.
COUNT_KEYS = ("accepted", "attempts", "rejected_attempts", "failed_samples")


def _counts(info: dict[str, Any]) -> dict[str, Any]:
    """The generation counts, each "?" where the info does not say."""
    counts = info.get("counts") or {}
    return {k: counts[k] if counts.get(k) is not None else "?" for k in COUNT_KEYS}


def _acceptance_rate(counts: dict[str, Any]) -> str:
    rate = counts.get("acceptance_rate")
    return "unknown" if rate is None else f"{float(rate):.3f}"


def _label_settings(info: dict[str, Any]) -> dict[str, Any]:
    """How the labels were made: ``label`` (written by ``streetsynth label``) or ``labeler`` (by generate)."""
    if isinstance(info.get("label"), dict):
        return dict(sorted(info["label"].items()))
    labeler = info.get("labeler")
    if not labeler:
        return {}
    try:
        parsed = json.loads(labeler)
    except (TypeError, ValueError):
        return {"labeler": labeler}
    return dict(sorted(parsed.items())) if isinstance(parsed, dict) else {"labeler": labeler}


def _source(info: dict[str, Any]) -> dict[str, Any]:
    """The source dataset as the card shows it: a local path is reduced to its folder name."""
    source = dict(info.get("source") or {})
    for key in ("path", "repo"):  # builders write "path", generators "repo"
        if key in source:
            source[key] = Path(str(source[key])).name
    return dict(sorted(source.items()))


def card_context(repo: str | Path, repo_id: str | None = None, samples: bool = True) -> dict[str, Any]:
    """Every value the template shows, computed from ``repo``. Draws the sample sheet if asked."""
    info = repo_layout.read_info(repo)
    configs = repo_layout.data_configs(repo)
    if not configs:
        raise ValueError(f"{repo}: no Parquet shards under {repo_layout.DATA_DIR}/; nothing to describe")
    default = default_config(repo, info, configs)
    splits = dataset_stats(repo)
    kind = info.get("kind", "real")
    version = info.get("version")
    gen = generation_stats(repo, SYNTHETIC, next(iter(configs[SYNTHETIC]))) if SYNTHETIC in configs else None
    sample_config = default if default != PAIRS else next((c for c in configs if c != PAIRS), None)
    samples_path = samples_from = None
    n_samples = 0
    if samples and sample_config is not None:
        sample_split = next(iter(configs[sample_config]))
        sheet = render_samples(repo, sample_config, sample_split)
        if sheet is not None:
            samples_path, samples_from = SAMPLES_PATH, f"{sample_config}/{sample_split}"
            n_samples = min(6, next(s.rows for s in splits if (s.config, s.split) == (sample_config, sample_split)))
    settings = dict(sorted((info.get("settings") or {}).items()))
    image_sizes: dict[str, int] = {}
    for s in splits:
        for size, n in s.image_sizes.items():
            image_sizes[size] = image_sizes.get(size, 0) + n
    total = sum(s.rows for s in splits)
    pretty = f"streetsynth {kind} street scenes" + (f" {version_tag(version)}" if version else "")
    return {
        "pretty_name": pretty,
        "summary": (
            "Synthetic wide street scenes: diffusion-outpainted FRONT + FRONT_RIGHT panoramas with instance "
            "masks for vehicles, pedestrians, cyclists and signs, made by streetsynth."
            if kind == "synthetic" else
            "Real wide street scenes: Waymo Open Dataset FRONT and FRONT_RIGHT camera images stitched into one "
            "panorama, with boxes and instance masks carried into stitched coordinates, made by streetsynth."
        ),
        "kind": kind,
        "version": version,
        "tag": version_tag(version) if version else None,
        "fingerprint": info.get("fingerprint"),
        "format_version": info.get("format_version"),
        "total_rows": total,
        "splits": splits,
        "class_names": list(CLASS_NAMES),
        "image_sizes": dict(sorted(image_sizes.items())),
        "source": _source(info),
        "settings": settings,
        "counts": _counts(info),
        "acceptance_rate": _acceptance_rate(info.get("counts") or {}),
        "generation": gen,
        "quality": info.get("quality"),
        "label_settings": _label_settings(info),
        "skipped": info.get("skipped") if kind == "real" else None,
        "samples_path": samples_path,
        "samples_from": samples_from,
        "n_samples": n_samples,
        "repo_id": repo_id or REPO_ID_PLACEHOLDER,
        "license_link": WAYMO_TERMS_URL,
        "configs_block": repo_layout.configs_yaml(configs, default=default),
        "dataset_info_block": repo_layout.dataset_info_yaml(repo, configs),
    }


def card_data(context: dict[str, Any]) -> DatasetCardData:
    """The YAML metadata of the card."""
    return DatasetCardData(
        license="other",
        license_name=LICENSE_NAME,
        license_link=WAYMO_TERMS_URL,
        task_categories=["image-segmentation", "object-detection"],
        size_categories=[size_category(context["total_rows"])],
        source_datasets=["extended|waymo-open-dataset"],
        pretty_name=context["pretty_name"],
        tags=sorted({"autonomous-driving", "street-scenes", "waymo", "instance-segmentation", "streetsynth",
                     context["kind"]} | ({"synthetic", "diffusion-outpainting"} if context["kind"] == "synthetic" else set())),
        configs=context["configs_block"],
        dataset_info=context["dataset_info_block"],
    )


def render_card(repo: str | Path, repo_id: str | None = None, samples: bool = True) -> str:
    """The full README.md text (front matter and body) for ``repo``; also draws ``assets/samples.png``."""
    context = card_context(repo, repo_id=repo_id, samples=samples)
    data = card_data(context)
    card = DatasetCard.from_template(card_data=data, template_path=str(TEMPLATE_PATH), **context)
    text = str(card)
    return text if text.endswith("\n") else text + "\n"


def write_card(repo: str | Path, repo_id: str | None = None, samples: bool = True) -> Path:
    """Render the card and write it as the repo's README.md (the ``configs:`` block included)."""
    path = Path(repo) / repo_layout.README_PATH
    repo_layout.atomic_write_text(path, render_card(repo, repo_id=repo_id, samples=samples))
    return path
