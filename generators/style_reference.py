"""A style reference: an image (or a folder of them, one drawn per row) steering the generated image's
look through an IP-Adapter (diffusers' ``pipe.load_ip_adapter``).

The adapter is named like diffusers names it: a Hub id or a local folder, and the weight file's path
inside it (``models/ip-adapter_sd15.safetensors`` in ``h94/IP-Adapter``); its CLIP image encoder
lies in ``image_encoder/`` beside the weight file. Offline and not cached, loading fails with a
message naming the missing file. Each row's reference is drawn with its own derived seed, so a
rerun picks the same one, and the row records the reference's file name and digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from streetsynth.digest import file_digest
from streetsynth.seeds import derive_seed

IP_ADAPTER = "h94/IP-Adapter"
IP_ADAPTER_WEIGHT = "models/ip-adapter_sd15.safetensors"
#: The adapter weight file per inpainting family with a UNet (``h94/IP-Adapter``'s layout).
FAMILY_WEIGHTS = {"sd-inpaint": IP_ADAPTER_WEIGHT, "sdxl-inpaint": "sdxl_models/ip-adapter_sdxl.safetensors"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class StyleReference:
    """One reference image: the picture handed to the pipeline and what a row records of it."""

    image: Image.Image
    record: dict[str, Any]  # {"name": file name, "digest": sha256 prefix, "scale": adapter scale}


class StyleImages:
    """The reference images of ``--style-image`` (a file, or every image in a folder, sorted by name)."""

    def __init__(self, path: str | Path, scale: float):
        path = Path(path)
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise FileNotFoundError(f"--style-image {path}: the folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
        elif path.is_file():
            self.files = [path]
        else:
            raise FileNotFoundError(f"--style-image {path}: no such file or folder")
        if not 0.0 <= scale <= 2.0:
            raise ValueError(f"--style-scale must lie in [0, 2], got {scale}")
        self.path, self.scale = path, scale
        self.digests = [file_digest(p) for p in self.files]
        self._image = lru_cache(maxsize=64)(self._decode)  # each reference decoded once, shared by its samples

    def _decode(self, k: int) -> Image.Image:
        return Image.open(self.files[k]).convert("RGB")

    def record(self) -> dict[str, Any]:
        """The set as a version records it: its name, size and a digest of its members (no local path)."""
        import hashlib

        joined = hashlib.sha256(",".join(self.digests).encode()).hexdigest()[:12]
        return {"name": self.path.name, "images": len(self.files), "digest": joined, "scale": self.scale}

    def pick(self, run_seed: int, sample_id: str) -> StyleReference:
        """The reference of one sample, drawn with a seed derived from (run seed, sample id)."""
        k = int(np.random.default_rng(derive_seed(run_seed, f"{sample_id}/style", 0)).integers(len(self.files)))
        return StyleReference(self._image(k), {"name": self.files[k].name, "digest": self.digests[k], "scale": self.scale})


def load_ip_adapter(pipe, adapter: str = IP_ADAPTER, weight: str = IP_ADAPTER_WEIGHT, scale: float = 0.6) -> None:
    """Load an IP-Adapter (and its image encoder) into ``pipe`` and set its scale.

    ``adapter`` is a Hub id or a local folder; ``weight`` the weight file's path inside it. A missing
    file (a local folder without it, or the Hub offline and nothing cached) raises FileNotFoundError
    naming it.
    """
    subfolder, _, name = weight.rpartition("/")
    local = Path(adapter)
    if local.is_dir():
        for need in (local / weight, local / subfolder / "image_encoder" / "config.json"):
            if not need.is_file():
                raise FileNotFoundError(f"IP-Adapter {adapter}: missing {need}")
    try:
        pipe.load_ip_adapter(adapter, subfolder=subfolder, weight_name=name)
    except OSError as exc:  # huggingface_hub's offline and not-found errors are OSErrors
        raise FileNotFoundError(
            f"IP-Adapter {adapter}: cannot load {weight} (or {subfolder + '/' if subfolder else ''}image_encoder/): "
            f"not cached and the Hub is unreachable or offline (HF_HUB_OFFLINE); download it once or pass a local "
            f"folder with --ip-adapter ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})") from exc
    pipe.set_ip_adapter_scale(scale)


def adapter_name(adapter: str) -> str:
    """How a version records ``--ip-adapter``: a local folder by its name (never the machine's path), a Hub id as is."""
    return Path(adapter).name if Path(adapter).is_dir() else adapter


def weight_for(family: str, weight: str | None) -> str:
    """The adapter weight file for an inpainting ``family``: ``weight`` if given, else the family's; a family
    without an IP-Adapter (a transformer denoiser) is an error naming the ones that have one."""
    if family not in FAMILY_WEIGHTS:
        raise ValueError(f"--style-image: the {family} family takes no IP-Adapter here; use one of "
                         f"{', '.join(FAMILY_WEIGHTS)}")
    return weight or FAMILY_WEIGHTS[family]

