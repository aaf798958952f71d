"""streetsynth: Waymo street scenes as HuggingFace datasets, real and diffusion-outpainted."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streetsynth")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
