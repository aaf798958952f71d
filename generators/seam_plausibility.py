"""The plausibility score: is the invented part new content, or a copy of the known part?

A fill that mirrors or repeats the known part is continuous at the edge, so the seam gate cannot
and should not reject it; it is wrong in another way. The score is the mean gray difference between
the invented part and the closest of its two copies (the known part mirrored about the edge, the
known part's last columns repeated), over the invented part's own spread around its mean: about 1
or more for new content, near 0 for a copy. Recorded per row beside the seam score; the generator
uses it only when asked (``--plausibility-threshold``).
"""

from __future__ import annotations

import cv2
import numpy as np

from .seam import oriented_edges


def _copy_distance(img: np.ndarray, e: int, width: int = 128) -> float:
    h, w = img.shape[:2]
    n = min(e, w - e)
    if n < 4:
        return float("inf")
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    scale = min(1.0, width / w)
    small = cv2.resize(gray, (max(8, round(w * scale)), max(4, round(h * scale))), interpolation=cv2.INTER_AREA)
    se, sn = round(e * scale), max(2, round(n * scale))
    fill = small[:, se:se + sn].astype(np.float32)
    mirror = small[:, se - sn:se][:, ::-1].astype(np.float32)
    repeat = small[:, se - sn:se].astype(np.float32)
    spread = np.abs(fill - fill.mean()).mean() + 1.0
    return float(min(np.abs(fill - mirror).mean(), np.abs(fill - repeat).mean()) / spread)


def plausibility_score(image: np.ndarray, mask: np.ndarray) -> float:
    """Smallest copy distance over the mask edges (module docstring); nan when the mask has no edge."""
    d = [_copy_distance(v, e) for v, e in oriented_edges(image, mask)]
    return float(min(d)) if d else float("nan")
