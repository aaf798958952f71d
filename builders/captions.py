"""Captions for stitched scenes, from one of four sources (recorded as ``caption_source``).

- ``manual``: a prompts file. Plain text: one prompt per line, used in turn (frame ``k`` of the
  ``s``-th segment file gets line ``(s + k) mod n``, so sharding does not change the answer).
  CSV with a header ``id,prompt``: the prompt of each row id (``<segment>_<timestamp>``).
- ``template``: time of day, weather, location and the counts of vehicles and pedestrians.
- ``clip``: a CLIP model scores a vocabulary of scene phrases against the image; the best phrase
  of each group is composed into a prompt, with the label counts appended.
- ``blip``: ``BlipForConditionalGeneration`` writes a caption.

Models are injected (``ClipCaptioner(model, processor)``); :func:`make_captioner` loads them by
Hub id or local path for the CLI and the builder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streetsynth.schema import CLASS_NAMES

SOURCES = ("manual", "template", "clip", "blip")
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
DEFAULT_BLIP = "Salesforce/blip-image-captioning-base"
#: Phrase groups scored by CLIP; one phrase per group goes into the caption.
CLIP_VOCABULARY: dict[str, tuple[str, ...]] = {
    "place": ("a city street", "a highway", "a suburban road", "an intersection", "a parking lot"),
    "light": ("in daylight", "at dusk", "at night"),
    "weather": ("on a sunny day", "in the rain", "on a cloudy day", "in fog"),
}
_TIME = {"day": "during the day", "dawn/dusk": "at dusk", "night": "at night"}
_PLACE = {"location_phx": "in Phoenix", "location_sf": "in San Francisco", "location_other": "in a city"}


@dataclass
class CaptionContext:
    """What a captioner may use besides the image."""

    id: str
    time_of_day: str = ""
    location: str = ""
    weather: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # objects per CLASS_NAMES name
    segment_index: int = 0  # position of the segment file in the sorted source
    frame_index: int = 0  # position of the frame in its segment


class Captioner(Protocol):
    source: str

    def __call__(self, image: np.ndarray, ctx: CaptionContext) -> str: ...


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def counts_phrase(counts: dict[str, int]) -> str:
    """``"with 3 vehicles and 1 pedestrian"``, or ``""`` when there are none."""
    parts = [_plural(counts.get(c, 0), c) for c in ("vehicle", "pedestrian") if counts.get(c, 0)]
    return ("with " + " and ".join(parts)) if parts else ""


class TemplateCaptioner:
    """A caption from the scene conditions and label counts; no model."""

    source = "template"

    def __call__(self, image: np.ndarray, ctx: CaptionContext) -> str:
        words = ["a wide street scene"]
        if ctx.time_of_day:
            words.append(_TIME.get(ctx.time_of_day.lower(), f"at {ctx.time_of_day.lower()}"))
        if ctx.weather:
            words.append(f"in {ctx.weather.lower()} weather")
        if ctx.location:
            words.append(_PLACE.get(ctx.location, f"in {ctx.location.removeprefix('location_')}"))
        text = " ".join(words)
        extra = counts_phrase(ctx.counts)
        return f"{text}, {extra}" if extra else text


class ManualCaptioner:
    """Prompts from a file (see the module docstring for the two layouts)."""

    source = "manual"

    def __init__(self, prompts: list[str] | None = None, by_id: dict[str, str] | None = None, path: str = "prompts"):
        self.prompts, self.by_id, self.path = list(prompts or []), dict(by_id or {}), path
        if not self.prompts and not self.by_id:
            raise ValueError(f"{path}: no prompts")

    @classmethod
    def from_file(cls, path: str | Path) -> "ManualCaptioner":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: prompts file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: prompts file is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                             "give one prompt per line, or a CSV with columns id,prompt") from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines and [h.strip().lower() for h in lines[0].split(",")[:2]] == ["id", "prompt"]:
            by_id = {}
            for n, row in enumerate(csv.DictReader(text.splitlines()), start=2):
                rid = (row.get("id") or "").strip()
                if not rid or row.get("prompt") is None:
                    raise ValueError(f"{path}: line {n}: need 'id,prompt'")
                by_id[rid] = row["prompt"].strip()
            return cls(by_id=by_id, path=str(path))
        return cls(prompts=lines, path=str(path))

    def __call__(self, image: np.ndarray, ctx: CaptionContext) -> str:
        if self.by_id:
            if ctx.id not in self.by_id:
                raise ValueError(f"{self.path}: no prompt for frame id {ctx.id}")
            return self.by_id[ctx.id]
        return self.prompts[(ctx.segment_index + ctx.frame_index) % len(self.prompts)]


def _features(out) -> torch.Tensor:
    """Embeddings from ``get_*_features`` whether it returns a tensor or a model output."""
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipCaptioner:
    """Compose a prompt from the CLIP-best phrase of each vocabulary group (+ label counts).

    ``processor`` is a ``CLIPProcessor`` (tokenizer + image processor). Phrase embeddings are
    computed once.
    """

    source = "clip"

    def __init__(self, model, processor, vocabulary: dict[str, tuple[str, ...]] | None = None):
        import torch

        self.model, self.processor = model.eval(), processor
        self.vocabulary = dict(vocabulary or CLIP_VOCABULARY)
        phrases = [p for group in self.vocabulary.values() for p in group]
        max_len = getattr(getattr(model.config, "text_config", None), "max_position_embeddings", 77)
        tok = processor.tokenizer(phrases, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.no_grad():
            text = _features(model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]))
        self.text = torch.nn.functional.normalize(text.float(), dim=-1)
        self.groups = [(name, list(group)) for name, group in self.vocabulary.items()]

    def scores(self, image: np.ndarray) -> dict[str, dict[str, float]]:
        """Cosine similarity of every phrase to the image, by group."""
        import torch

        pixels = self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            emb = _features(self.model.get_image_features(pixel_values=pixels.to(self.model.dtype)))
        sims = (torch.nn.functional.normalize(emb.float(), dim=-1) @ self.text.T)[0].tolist()
        out, i = {}, 0
        for name, group in self.groups:
            out[name] = dict(zip(group, sims[i : i + len(group)]))
            i += len(group)
        return out

    def __call__(self, image: np.ndarray, ctx: CaptionContext) -> str:
        best = {name: max(s, key=s.get) for name, s in self.scores(image).items()}
        text = "a photo of " + " ".join(best[name] for name, _ in self.groups if name != "weather")
        if "weather" in best:
            text += f", {best['weather']}"
        extra = counts_phrase(ctx.counts)
        return f"{text}, {extra}" if extra else text


class BlipCaptioner:
    """A BLIP caption (``BlipForConditionalGeneration`` + ``BlipProcessor``), greedy decoding."""

    source = "blip"

    def __init__(self, model, processor, max_new_tokens: int = 30, prefix: str = "a street scene of"):
        self.model, self.processor = model.eval(), processor
        self.max_new_tokens, self.prefix = max_new_tokens, prefix

    def __call__(self, image: np.ndarray, ctx: CaptionContext) -> str:
        import torch

        inputs = self.processor(images=image, text=self.prefix, return_tensors="pt")
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.decode(ids[0], skip_special_tokens=True).strip()


def make_captioner(source: str, prompts: str | Path | None = None, model: str | None = None) -> Captioner:
    """A captioner by source name; ``model`` is a Hub id or local path for ``clip``/``blip``."""
    if source not in SOURCES:
        raise ValueError(f"unknown caption source {source!r}; known: {', '.join(SOURCES)}")
    if source == "template":
        return TemplateCaptioner()
    if source == "manual":
        if prompts is None:
            raise ValueError("captions 'manual' need a prompts file (--prompts FILE)")
        return ManualCaptioner.from_file(prompts)
    if source == "clip":
        from transformers import CLIPModel, CLIPProcessor

        name = model or DEFAULT_CLIP
        return ClipCaptioner(*_load_pretrained(name, CLIPModel, CLIPProcessor))
    from transformers import BlipForConditionalGeneration, BlipProcessor

    name = model or DEFAULT_BLIP
    return BlipCaptioner(*_load_pretrained(name, BlipForConditionalGeneration, BlipProcessor))


def _load_pretrained(name: str, model_cls, processor_cls) -> tuple[Any, Any]:
    """Model and processor from a local folder or the Hub cache; ValueError saying which file is
    missing, where it was looked for and where it would come from (instead of "couldn't connect")."""
    try:
        return model_cls.from_pretrained(name), processor_cls.from_pretrained(name)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if Path(name).is_dir():
            missing = [f for f in ("config.json",) if not (Path(name) / f).is_file()]
            where = f"the local folder {name} lacks {', '.join(missing) or 'a file it needs'}"
        else:
            from huggingface_hub import constants, try_to_load_from_cache

            cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
            where = (f"{'its config.json is' if cached else 'config.json is not'} in the Hugging Face cache "
                     f"{constants.HF_HUB_CACHE}; it would be downloaded from https://huggingface.co/{name}"
                     + (" (HF_HUB_OFFLINE=1: downloads are off)" if constants.HF_HUB_OFFLINE else ""))
        raise ValueError(f"--caption-model {name}: {model_cls.__name__} cannot be loaded: {where}; "
                         f"or pass --caption-model a local folder ({first})") from None


def class_counts(classes: np.ndarray) -> dict[str, int]:
    """Objects per class name from CLASS_NAMES indices."""
    binc = np.bincount(np.asarray(classes, np.int64), minlength=len(CLASS_NAMES))
    return {name: int(n) for name, n in zip(CLASS_NAMES, binc)}
