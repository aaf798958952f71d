"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

An ImageNet backbone's activations at five ReLUs are unit-normalised along channels; the squared
difference of two images' activations is weighted per channel by the learned linear 1x1 layer,
averaged over space and summed over layers. With non-negative channel weights (the published ones
are), that is a squared Euclidean distance between per-image embeddings
``sqrt(w_c / (H W)) * f / ||f||``, so a set of N images needs N backbone passes for all its pairs.

Weights are two local files: torchvision's backbone checkpoint (torch hub's ``checkpoints/`` folder
by default) and the LPIPS v0.1 linear layers (``alex.pth`` / ``vgg.pth``; the copy torchmetrics
ships by default). Both are pickled files from outside, read with ``torch.load(weights_only=True)``.
A missing one is named with where it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

#: Where the LPIPS v0.1 linear layers are published.
LINEAR_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth"
#: The paper's input scaling of images in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


@dataclass(frozen=True)
class Net:
    """A backbone: its torchvision builder and weights enum, the ``features`` indices of the tapped ReLUs."""

    builder: str
    weights: str
    taps: tuple[int, ...]
    channels: tuple[int, ...]


NETS = {
    "alex": Net("alexnet", "AlexNet_Weights", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": Net("vgg16", "VGG16_Weights", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}


def net_spec(net: str) -> Net:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS backbone {net!r}; known: {', '.join(NETS)}")
    return NETS[net]


class LPIPS(torch.nn.Module):
    """LPIPS over uint8 RGB images (N, 3, H, W); ``embed`` gives the per-image vectors whose squared
    distance is LPIPS, ``forward(a, b)`` the (N,) distances of pairs."""

    def __init__(self, net: str, features: torch.nn.Sequential, linear: list[torch.Tensor],
                 description: str) -> None:
        super().__init__()
        spec = net_spec(net)
        if [w.numel() for w in linear] != list(spec.channels):
            raise ValueError(f"LPIPS {net}: linear layers of {[w.numel() for w in linear]} channels, "
                             f"expected {list(spec.channels)}")
        if any(bool((w < 0).any()) for w in linear):
            raise ValueError(f"LPIPS {net}: linear weights must be non-negative (the published ones are)")
        self.net, self.taps, self.description = net, spec.taps, description
        self.features = features[:spec.taps[-1] + 1].eval().requires_grad_(False)
        for k, w in enumerate(linear):
            self.register_buffer(f"w{k}", w.reshape(1, -1, 1, 1).float())
        self.register_buffer("shift", torch.tensor(SHIFT).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).reshape(1, 3, 1, 1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) float32 vectors of uint8 images: squared distances between them are LPIPS."""
        x = (images.float() / 127.5 - 1.0 - self.shift) / self.scale
        parts = []
        with torch.inference_mode():
            for i, layer in enumerate(self.features):
                x = layer(x)
                if i in self.taps:
                    k = self.taps.index(i)
                    unit = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                    weight = getattr(self, f"w{k}") / (x.shape[2] * x.shape[3])
                    parts.append((unit * weight.sqrt()).flatten(1))
        return torch.cat(parts, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self.embed(a) - self.embed(b)).pow(2).sum(1)


def pairwise(emb: torch.Tensor) -> torch.Tensor:
    """The LPIPS of every unordered pair (i < j) of embedded images, exact (no matmul expansion)."""
    rows = [(emb[i + 1:] - emb[i]).pow(2).sum(1) for i in range(len(emb) - 1)]
    return torch.cat(rows) if rows else emb.new_zeros(0)


def backbone_file(net: str, path: str | Path | None = None) -> Path:
    """torchvision's checkpoint of the backbone; says which file is missing and where it comes from."""
    import torchvision

    url = getattr(torchvision.models, net_spec(net).weights).IMAGENET1K_V1.url
    target = Path(path) if path else Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not target.exists():
        raise FileNotFoundError(f"LPIPS ({net}) needs the torchvision backbone weights {url.rsplit('/', 1)[-1]} "
                                f"({url}); no file at {target}: download it there or pass --lpips-backbone PATH")
    return target


def linear_file(net: str, path: str | Path | None = None) -> Path:
    """The LPIPS v0.1 linear layers: ``path``, else torchmetrics' shipped copy; a clear error otherwise."""
    net_spec(net)
    target = Path(path) if path else None
    if target is None:
        try:
            import torchmetrics.functional.image.lpips as tm_lpips

            target = Path(tm_lpips.__file__).parent / "lpips_models" / f"{net}.pth"
        except ImportError:
            target = Path(f"{net}.pth")
    if not target.exists():
        raise FileNotFoundError(f"LPIPS ({net}) needs its linear layers {net}.pth ({LINEAR_URL.format(net=net)}); "
                                f"no file at {target}: download it and pass --lpips-linear PATH")
    return target


def read_linear(path: Path) -> list[torch.Tensor]:
    """The five (or seven) ``lin<k>`` weights of an LPIPS file, in layer order, tensors only."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    found = {int(m.group(1)): v for k, v in state.items() if (m := re.fullmatch(r"lin(\d+)\..*weight", k))}
    if not found:
        raise ValueError(f"{path}: no lin<k> weights; not an LPIPS linear-layers file")
    return [found[k] for k in sorted(found)]


def load_lpips(net: str = "alex", backbone: str | Path | None = None, linear: str | Path | None = None) -> LPIPS:
    """LPIPS from local files: the torchvision backbone checkpoint and the linear layers."""
    import torchvision

    spec = net_spec(net)
    bfile, lfile = backbone_file(net, backbone), linear_file(net, linear)
    model = getattr(torchvision.models, spec.builder)(weights=None)
    model.load_state_dict(torch.load(bfile, map_location="cpu", weights_only=True))
    return LPIPS(net, model.features, read_linear(lfile), f"lpips-{net} ({bfile.name} + {lfile.name} v0.1)")


def tiny_lpips(net: str = "alex", seed: int = 0) -> LPIPS:
    """The real architecture with a random backbone and random non-negative linear weights (tests)."""
    import torchvision

    spec = net_spec(net)
    torch.manual_seed(seed)
    features = getattr(torchvision.models, spec.builder)(weights=None).features
    linear = [torch.rand(c) for c in spec.channels]
    return LPIPS(net, features, linear, f"lpips-{net} random (NOT the published weights: the numbers only show "
                 "the flow)")
