"""Every model a stage runs, loaded one way: ``load(kind, spec) -> LoadedModel``.

A :class:`ModelSpec` names a model (a Hub id, a local folder, or ``tiny`` for a tiny random one)
with its revision and where it runs, or carries an *injected* model built by the caller. The one
rule for injected models, in every stage: they declare their id and revision (:func:`declare`),
so provenance never says "injected". Loaded models say which weights they are: a Hub snapshot's
commit or a local folder's weights hash, and a local folder is named by its folder name only
(published versions must not carry the machine's absolute paths).

Weights are read from safetensors where the repo has them; a missing file offline is reported by
name with where it would come from.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .inpaint import LoadedModel, injected, load as load_inpaint, resolve_dtype, weights_revision

#: Attribute an injected model carries: ``(model_id, revision)``.
DECLARED = "_streetsynth_model"
KINDS = ("inpaint", "occluder", "controlnet", "text2img", "sam", "clip", "caption")


@dataclass(frozen=True)
class ModelSpec:
    """What to load: a model name and revision, where it runs, or an injected model."""

    name: str = "tiny"  # Hub id, local folder, or "tiny" / "tiny:<family>"
    revision: str | None = None  # Hub revision
    device: str = "cpu"
    dtype: str | None = None  # fp32, fp16 or bf16 (default: fp16 on CUDA, fp32 elsewhere)
    extra: dict[str, Any] = field(default_factory=dict)  # per kind: controlnet, attention, compile
    model: Any = field(default=None, repr=False)  # an injected model (must be declared)


def declare(model: Any, model_id: str, revision: str) -> Any:
    """Mark a caller-built model with its id and revision, the way every stage accepts injected models."""
    setattr(model, DECLARED, (model_id, revision))
    return model


def declared(model: Any, kind: str) -> LoadedModel:
    """An injected model as a :class:`LoadedModel`; one without a declared id and revision is refused."""
    if isinstance(model, LoadedModel):
        return model
    ident = getattr(model, DECLARED, None)
    if ident is None:
        raise ValueError(f"an injected {kind} model must declare its id and revision: pass "
                         "streetsynth.models.load.declare(model, model_id, revision)")
    if kind == "inpaint" or (kind == "occluder" and not type(model).__name__.startswith("StableDiffusionGLIGEN")):
        return injected(model, *ident)  # an inpainting pipeline: its family comes with it
    return LoadedModel(model, None, *ident)


def model_name(spec: str) -> str:
    """How provenance names a model: its Hub id, or a local folder's name (never its absolute path)."""
    local = Path(spec)
    return local.resolve().name if local.exists() else spec


def load(kind: str, spec: ModelSpec) -> LoadedModel:
    """The model of ``kind`` that ``spec`` names (or its injected model), with its id and weights revision."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    if spec.model is not None:
        return declared(spec.model, kind)
    return _LOADERS[kind](spec)


def from_pretrained(cls, name: str, revision: str | None = None, **kwargs: Any):
    """``cls.from_pretrained`` preferring safetensors; a missing file offline names itself and its source."""
    safe = _has_safetensors(name)
    if safe is False:
        print(f"warning: {name} has no safetensors weights; loading its pickled .bin files", file=sys.stderr)
    try:
        return cls.from_pretrained(name, revision=revision, use_safetensors=safe, **kwargs)
    except OSError as err:
        raise FileNotFoundError(missing_message(name, revision, err)) from err


def _has_safetensors(name: str) -> bool | None:
    """True/False for a local folder; None (diffusers' and transformers' own preference) for a Hub id."""
    local = Path(name)
    if not local.exists():
        return True if _hub_lists_safetensors(name) else None
    return any(local.rglob("*.safetensors"))


def _hub_lists_safetensors(name: str) -> bool:
    """Whether the local Hub cache holds safetensors files of ``name`` (no network)."""
    try:
        from huggingface_hub import scan_cache_dir

        repos = [r for r in scan_cache_dir().repos if r.repo_id == name]
    except Exception:  # noqa: BLE001 - no cache is the same as not cached
        return False
    return any(f.file_name.endswith(".safetensors") for r in repos for rev in r.revisions for f in rev.files)


def missing_message(name: str, revision: str | None, err: OSError, file: str | None = None) -> str:
    """The message for a model that could not be read: which file, where it was looked for, where it comes from."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    local = Path(name)
    if local.exists():
        return f"{name}: cannot load the model from this folder ({first})"
    from huggingface_hub.constants import HF_HUB_CACHE

    rev = revision or "main"
    what = file or "a file it needs"
    return (f"{name}: {what} is not in the local Hugging Face cache ({HF_HUB_CACHE}); it would come from "
            f"https://huggingface.co/{name}/blob/{rev}/{file or ''} ({first}). Download it once online "
            f"(huggingface-cli download {name}) or pass a local folder")


def _finish(pipe, device: str):
    pipe = pipe.to(device)
    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None  # street scenes; a blacked-out image would be a silent bad row
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _inpaint(spec: ModelSpec) -> LoadedModel:
    return load_inpaint(spec.name, spec.device, spec.dtype, spec.revision, spec.extra.get("attention"),
                        bool(spec.extra.get("compile")))


def _occluder(spec: ModelSpec) -> LoadedModel:
    """GLIGEN box-grounded inpainting when the name says so, else an inpainting pipeline of its family
    (``tiny:sdxl-inpaint`` or an SDXL inpainting id/folder gives the SDXL backend)."""
    if "gligen" not in spec.name.lower():
        return _inpaint(spec)
    from diffusers import StableDiffusionGLIGENPipeline

    pipe = from_pretrained(StableDiffusionGLIGENPipeline, spec.name, spec.revision,
                           dtype=resolve_dtype(spec.dtype, spec.device))
    return LoadedModel(_finish(pipe, spec.device), None, model_name(spec.name),
                       weights_revision(spec.name, spec.revision))


def _controlnet(spec: ModelSpec) -> LoadedModel:
    """``StableDiffusionControlNetPipeline`` of a base model and ``extra["controlnet"]`` (or the tiny one)."""
    if spec.name == "tiny":
        from .tiny_controlnet import build_tiny_controlnet_pipeline

        return LoadedModel(build_tiny_controlnet_pipeline(0).to(spec.device), None,
                           "streetsynth/tiny-random-controlnet", "seed-0")
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    dtype, cn_name = resolve_dtype(spec.dtype, spec.device), spec.extra["controlnet"]
    cn = from_pretrained(ControlNetModel, cn_name, None, dtype=dtype)
    pipe = from_pretrained(StableDiffusionControlNetPipeline, spec.name, spec.revision, controlnet=cn, dtype=dtype)
    return LoadedModel(_finish(pipe, spec.device), None, f"{model_name(spec.name)}+{model_name(cn_name)}",
                       f"{weights_revision(spec.name, spec.revision)}+{weights_revision(cn_name, None)}")


def _text2img(spec: ModelSpec) -> LoadedModel:
    """``StableDiffusionPipeline`` (or the tiny one)."""
    if spec.name == "tiny":
        from .tiny_controlnet import build_tiny_text2img_pipeline

        return LoadedModel(build_tiny_text2img_pipeline(0).to(spec.device), None,
                           "streetsynth/tiny-random-text2img", "seed-0")
    from diffusers import StableDiffusionPipeline

    pipe = from_pretrained(StableDiffusionPipeline, spec.name, spec.revision,
                           dtype=resolve_dtype(spec.dtype, spec.device))
    return LoadedModel(_finish(pipe, spec.device), None, model_name(spec.name),
                       weights_revision(spec.name, spec.revision))


def _sam(spec: ModelSpec) -> LoadedModel:
    """A SAM (``pipeline`` holds the module); its description names the checkpoint and its digest."""
    from .sam import load_sam

    sam, description = load_sam(spec.name, device=spec.device)
    return LoadedModel(sam, None, description, "seed-0" if spec.name == "tiny" else description.rsplit("@", 1)[-1])


def _clip(spec: ModelSpec) -> LoadedModel:
    """A transformers CLIP model and processor (``pipeline`` is the pair)."""
    from transformers import CLIPModel, CLIPProcessor

    model = from_pretrained(CLIPModel, spec.name, spec.revision).to(spec.device).eval()
    processor = CLIPProcessor.from_pretrained(spec.name, revision=spec.revision)
    return LoadedModel((model, processor), None, model_name(spec.name), _revision_or_name(spec))


def _caption(spec: ModelSpec) -> LoadedModel:
    """A BLIP captioning model and processor (``pipeline`` is the pair)."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = from_pretrained(BlipForConditionalGeneration, spec.name, spec.revision).to(spec.device).eval()
    processor = BlipProcessor.from_pretrained(spec.name, revision=spec.revision)
    return LoadedModel((model, processor), None, model_name(spec.name), _revision_or_name(spec))


def _revision_or_name(spec: ModelSpec) -> str:
    try:
        return weights_revision(spec.name, spec.revision)
    except RuntimeError:
        return spec.revision or "unresolved"


_LOADERS: dict[str, Callable[[ModelSpec], LoadedModel]] = {
    "inpaint": _inpaint, "occluder": _occluder, "controlnet": _controlnet, "text2img": _text2img,
    "sam": _sam, "clip": _clip, "caption": _caption,
}
