"""Scene pairs for the seam gate's calibration family, from two independent renderers.

``sample_pairs``: the sample maker's panoramas (``streetsynth.builders.sample.render_panorama``) with
horizons spread over 0.33-0.57 of the height; each scene's *other* is a scene whose horizon lies
6-12 % of the height away (another scene of the same renderer at the same horizon is close to a
plausible continuation, so it is not used as a seam). ``raycast_pairs``: the independent ray-caster
(``render_scene.py``) seen by realistic cameras (distortion, random yaw, pitch, roll, position,
exposure); each scene's other comes from another random camera.
"""

from __future__ import annotations

import numpy as np
from render_scene import DISTORTION, Cam, _rot, render

from streetsynth.builders.sample import render_panorama


def sample_pairs(seeds, h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scene, other scene) per seed; every fifth seed renders at night."""
    out = []
    for s in seeds:
        rng = np.random.default_rng(s)
        hz = rng.uniform(0.33, 0.57)
        other_hz = hz + rng.uniform(0.06, 0.12) * (1 if hz < 0.45 else -1)
        night = s % 5 == 4
        scene = render_panorama(rng, h, w, h * hz, night, 4, 3)[0]
        other = render_panorama(rng, h, w, h * other_hz, night, 4, 3)[0]
        out.append((scene, other))
    return out


def _camera(rng: np.random.Generator, h: int, w: int) -> Cam:
    """A random Waymo-like camera on the street: 60-80 degrees wide, looking ahead or to the right."""
    f = (w / 2) / np.tan(np.radians(rng.uniform(30, 40)))
    rot = _rot(np.radians(rng.uniform(-50, 10)), np.radians(rng.uniform(-3, 3)), np.radians(rng.uniform(-1.5, 1.5)))
    centre = (rng.uniform(-15, 25), rng.uniform(-4, 0), rng.uniform(1.6, 2.6))
    return Cam(h, w, f, f, w / 2 + rng.uniform(-8, 8), h / 2 + rng.uniform(-8, 8), DISTORTION, rot, centre)


def raycast_pairs(seeds, h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scene, other scene) per seed from the ray-caster with random cameras and exposure."""
    out = []
    for s in seeds:
        rng = np.random.default_rng(10_000 + s)
        views = [render(_camera(rng, h, w), tuple(rng.uniform(0.7, 1.15) * rng.uniform(0.95, 1.05, 3)))[0]
                 for _ in range(2)]
        out.append((views[0], views[1]))
    return out


#: The two renderers by name, as the benchmarks and their tables key them.
SOURCES = {"sample": sample_pairs, "raycast": raycast_pairs}
