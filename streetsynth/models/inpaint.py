"""Inpainting model families: one registry of what differs per family, one loader, one typed result.

A model is read as a family from its ``model_index.json`` ``_class_name`` (an id or a folder) or from
an injected pipeline's class. The :class:`Family` says which pipeline class loads it and what the
callers must do differently: the denoiser attribute (``unet`` or ``transformer``) that takes the
dtype, attention backend, ``torch.compile`` and LoRA; which call arguments it accepts; the
guidance scale it is meant to run at (FLUX Fill's guidance is distilled: about 30, no negative
prompt); the size multiple of a canvas; the text encoders' max sequence length.

:func:`load` returns a :class:`LoadedModel`: the pipeline with its family, id and the revision
resolved *after* loading (the commit of the snapshot it was loaded from, or a hash of a local
folder's files), so provenance never says ``main``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Model name that builds the tiny random SD pipeline instead of loading weights.
TINY_MODEL = "tiny"
#: ``tiny:<family>`` builds that family's tiny random pipeline.
TINY_PREFIX = "tiny:"
#: Revisions that name no weights; provenance refuses them.
VAGUE_REVISIONS = frozenset({"", "main", "master", "injected", "latest"})
_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class Family:
    """What differs between inpainting model families."""

    name: str
    pipeline_class: str  # diffusers class that loads and runs it
    class_names: tuple[str, ...]  # model_index.json ``_class_name`` values of this family
    denoiser: str  # pipeline attribute of the denoising network: "unet" or "transformer"
    negative_prompt: bool  # whether the call takes a negative prompt
    strength: bool  # whether the call takes an inpainting strength
    guidance: str  # "cfg": classifier-free guidance; "distilled": a conditioning input, no negative branch
    default_guidance: float  # the scale the family is meant to run at
    latent_factor: int  # image side / latent side
    size_multiple: int  # canvas sides must be multiples of this
    max_sequence_length: int | None  # T5 tokens the call encodes (None: CLIP only, 77)
    example_id: str  # a Hub id of the family, for messages and the README


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("sd-inpaint", "StableDiffusionInpaintPipeline",
           ("StableDiffusionInpaintPipeline", "StableDiffusionPipeline"), "unet", True, True, "cfg", 7.5, 8, 8,
           None, "stabilityai/stable-diffusion-2-inpainting"),
    Family("sdxl-inpaint", "StableDiffusionXLInpaintPipeline",
           ("StableDiffusionXLInpaintPipeline", "StableDiffusionXLPipeline"), "unet", True, True, "cfg", 7.5, 8, 8,
           None, "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"),
    Family("sd3-inpaint", "StableDiffusion3InpaintPipeline",
           ("StableDiffusion3InpaintPipeline", "StableDiffusion3Pipeline"), "transformer", True, True, "cfg", 7.0,
           8, 16, 256, "stabilityai/stable-diffusion-3.5-medium"),
    Family("flux-fill", "FluxFillPipeline", ("FluxFillPipeline",), "transformer", False, True, "distilled", 30.0,
           8, 16, 512, "black-forest-labs/FLUX.1-Fill-dev"),
)}


class UnknownFamilyError(ValueError):
    """A model whose pipeline class no family knows."""


def family_of(class_name: str, source: str = "model") -> Family:
    """The family whose pipeline (or ``_class_name``) is ``class_name``; a clear error otherwise."""
    for family in FAMILIES.values():
        if class_name in family.class_names:
            return family
    known = ", ".join(f"{f.name} ({' / '.join(f.class_names)})" for f in FAMILIES.values())
    raise UnknownFamilyError(f"{source}: pipeline class {class_name!r} belongs to no known inpainting family; "
                             f"known: {known}")


def family_named(name: str) -> Family:
    if name not in FAMILIES:
        raise UnknownFamilyError(f"unknown inpainting family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


@dataclass(frozen=True)
class LoadedModel:
    """A loaded pipeline and exactly what it is: family, id, and the revision its weights came from."""

    pipeline: Any
    family: Family | None  # the inpainting family; None for other kinds of model
    model_id: str
    revision: str

    def __post_init__(self) -> None:
        if not self.model_id:
            raise ValueError("a loaded model needs an id")
        if self.revision.strip().lower() in VAGUE_REVISIONS:
            raise ValueError(f"{self.model_id}: revision {self.revision!r} names no weights; give a commit hash "
                             "or a weights hash")

    @property
    def denoiser(self):
        """The UNet or transformer."""
        return getattr(self.pipeline, self.family.denoiser)


def family_of_pipeline(pipeline, source: str = "pipeline") -> Family:
    """The family of a pipeline object: its class or the nearest base class a family knows."""
    for cls in type(pipeline).__mro__:
        if any(cls.__name__ in f.class_names for f in FAMILIES.values()):
            return family_of(cls.__name__)
    return family_of(type(pipeline).__name__, source)


def injected(pipeline, model_id: str, revision: str) -> LoadedModel:
    """A caller-built pipeline as a :class:`LoadedModel`; it must declare its id and revision."""
    return LoadedModel(pipeline, family_of_pipeline(pipeline, f"injected {model_id or 'pipeline'}"),
                       model_id, revision)


def call_kwargs(pipe, kwargs: dict[str, Any], allow_drop: Collection[str] = ()) -> dict[str, Any]:
    """``kwargs`` without the ``None`` values, checked against the pipeline's ``__call__``.

    An argument the pipeline does not take is an error (a row would record a setting that had no
    effect) unless it is named in ``allow_drop``, in which case it is left out.
    """
    params = inspect.signature(pipe.__call__).parameters
    given = {k: v for k, v in kwargs.items() if v is not None}
    refused = sorted(k for k in given if k not in params and k not in allow_drop)
    if refused:
        raise ValueError(f"{type(pipe).__name__} does not take {', '.join(refused)}; leave it unset or allow "
                         "dropping it explicitly")
    return {k: v for k, v in given.items() if k in params}


def weights_hash(folder: str | Path) -> str:
    """sha256 (16 hex) over the relative paths and bytes of a local model folder's files, streamed."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def resolve_dtype(dtype: str | None, device: str):
    """fp16 on CUDA and fp32 elsewhere unless ``dtype`` (fp32/fp16/bf16) says otherwise."""
    import torch

    if dtype is None:
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(_DTYPES)}")
    return getattr(torch, _DTYPES[dtype])


def read_family(spec: str, revision: str | None = None) -> Family:
    """The family of a local folder or Hub id, from its ``model_index.json``."""
    local = Path(spec)
    if local.exists():
        index = local / "model_index.json"
        if not index.exists():
            raise FileNotFoundError(f"{local}: not a diffusers pipeline folder (no model_index.json)")
        class_name = json.loads(index.read_text()).get("_class_name", "")
    else:
        from diffusers import DiffusionPipeline

        from .load import missing_message

        try:
            class_name = DiffusionPipeline.load_config(spec, revision=revision).get("_class_name", "")
        except OSError as err:
            raise FileNotFoundError(missing_message(spec, revision, err, "model_index.json")) from err
    return family_of(class_name, spec)


def spec_family(spec: str, revision: str | None = None) -> Family:
    """The family a model spec names, without loading weights: ``tiny[:family]``'s, or its model_index.json's."""
    if spec == TINY_MODEL or spec.startswith(TINY_PREFIX):
        return family_named(spec[len(TINY_PREFIX):] if spec != TINY_MODEL else "sd-inpaint")
    return read_family(spec, revision)


def build_tiny(family: str = "sd-inpaint", seed: int = 0) -> LoadedModel:
    """The tiny random pipeline of ``family`` (tests, benchmarks, ``--model tiny[:family]``)."""
    from . import tiny_inpaint

    fam = family_named(family)
    return LoadedModel(tiny_inpaint.BUILDERS[fam.name](seed), fam, f"streetsynth/tiny-random-{fam.name}",
                       f"seed-{seed}")


def load(spec: str, device: str = "cpu", dtype: str | None = None, revision: str | None = None,
         attention: str | None = None, compile_denoiser: bool = False) -> LoadedModel:
    """Load a Hub id, a local folder, ``tiny`` or ``tiny:<family>`` onto ``device``.

    ``attention`` is a diffusers attention backend name (``"native"``, ``"flash"``, ...) set on the
    denoiser; ``compile_denoiser`` wraps the denoiser in ``torch.compile``.
    """
    import torch

    torch_dtype = resolve_dtype(dtype, device)
    if spec == TINY_MODEL or spec.startswith(TINY_PREFIX):
        model = build_tiny(spec_family(spec).name, seed=0)
    else:
        import diffusers

        from .load import from_pretrained, model_name

        family = read_family(spec, revision)
        pipe = from_pretrained(getattr(diffusers, family.pipeline_class), spec, revision, dtype=torch_dtype)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None  # street scenes; a blacked-out image would be a silent bad row
        model = LoadedModel(pipe, family, model_name(spec), weights_revision(spec, revision))
    pipe, denoiser = model.pipeline, model.denoiser
    pipe = pipe.to(device) if denoiser.dtype == torch_dtype else pipe.to(device=device, dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    if attention:
        model.denoiser.set_attention_backend(attention)
    if compile_denoiser:
        setattr(pipe, model.family.denoiser, torch.compile(model.denoiser))
    return model


def weights_revision(spec: str, revision: str | None) -> str:
    """What a just-loaded model's weights are: ``sha256:<hash>`` of a local folder, or the commit of the
    Hub snapshot they came from (never a branch name)."""
    local = Path(spec)
    return "sha256:" + weights_hash(local) if local.exists() else snapshot_commit(spec, revision)


def snapshot_commit(repo_id: str, revision: str | None) -> str:
    """Commit hash of the cached snapshot a Hub model was just loaded from."""
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True)).name
    except Exception as err:
        raise RuntimeError(f"{repo_id}: loaded, but its snapshot's commit cannot be resolved from the cache "
                           f"({err}); pass --revision COMMIT") from err
