"""streetsynth: Waymo street scenes as HuggingFace datasets, real and diffusion-outpainted."""

#: The package version; kept equal to ``pyproject.toml``'s (a test checks). A constant, not
#: ``importlib.metadata``: reading the installed metadata cost most of ``streetsynth --help``'s start-up.
__version__ = "0.1.0"
