"""The seam gate on rendered street scenes with planted seams of known strength.

Rates stated (default threshold, 100 scenes 96x192, edge at x=128; measured when written:
clean false rejects ~11%, pole ~12%, building edge ~36%; seams of 16 levels passed 9%, of 24 2%, of 32 0%).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from factories_generate import street_image

from streetsynth.generators.seam import (DEFAULT_THRESHOLD, ROW_BAND_THRESHOLD, SeamGate, calibration_scores,
                                         mask_edges, rates, roc_table, row_band_score, seam_score, threshold_for_far)

H, W, EDGE, N = 96, 192, 128, 100


def _mask(edge=EDGE):
    m = np.zeros((H, W), np.uint8)
    m[:, edge:] = 255
    return m


def _plant(img, strength, sign):
    out = img.astype(np.float32)
    out[:, EDGE:] += sign * strength
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(0)
    return [street_image(rng, H, W) for _ in range(N)], rng


def _rate(images, reject=True):
    gate = SeamGate()
    scores = np.array([gate.score(i, _mask()) for i in images])
    return float(np.mean(scores > gate.threshold if reject else scores <= gate.threshold))


def test_mask_edges_are_the_actual_edges():
    m = np.zeros((8, 40), np.uint8)
    m[:, 10:20] = 255
    assert mask_edges(m).tolist() == [10, 20]
    assert mask_edges(np.zeros((8, 40), np.uint8)).tolist() == []
    assert seam_score(np.zeros((8, 40, 3), np.uint8), np.zeros((8, 40), np.uint8)) == 0.0


@pytest.mark.parametrize("strength", [24, 32])
def test_planted_seams_are_rejected(scenes, strength):
    images, rng = scenes
    seamed = [_plant(i, strength, rng.choice([-1, 1])) for i in images]
    assert _rate(seamed, reject=False) <= 0.05  # false accepts


def test_clean_scenes_pass(scenes):
    assert _rate(scenes[0]) <= 0.15  # false rejects


def test_a_pole_on_the_edge_passes(scenes):
    poles = []
    for img in scenes[0]:
        p = img.copy()
        p[:, EDGE:EDGE + 3] = 30
        poles.append(p)
    assert _rate(poles) <= 0.15


def test_a_building_edge_on_the_seam_is_the_known_weak_spot(scenes):
    images, _ = scenes
    rng = np.random.default_rng(1)
    built = []
    for img in images:
        b = img.copy()
        b[int(rng.integers(5, 40)):50, EDGE:EDGE + 40] = rng.uniform(40, 200, 3).astype(np.uint8)
        built.append(b)
    assert _rate(built) <= 0.40  # a real step the full height of a building looks like a seam


def test_a_seam_elsewhere_than_the_mask_edge_is_not_scored(scenes):
    img = scenes[0][0].astype(np.float32)
    img[:, 40:] += 40  # far from the mask edge at 128
    assert seam_score(np.clip(img, 0, 255).astype(np.uint8), _mask()) <= DEFAULT_THRESHOLD


def test_roc_and_threshold_for_far():
    table = roc_table(np.array([5.0, 6.0, 7.0, 0.5]), np.array([0.1, 0.2, 3.0]))
    t, far, frr = threshold_for_far(np.array([5.0, 6.0, 7.0, 0.5]), np.array([0.1, 0.2, 3.0]), 0.25)
    assert (t, far) == (3.0, 0.25) and frr == 0.0
    assert table[0] == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        threshold_for_far(np.array([]), np.array([1.0]), 0.05)


def test_seam_calibrate_command(tmp_path, scenes):
    from PIL import Image

    images, rng = scenes
    for sub in ("seam", "clean"):
        (tmp_path / "imgs" / sub).mkdir(parents=True)
    for k, img in enumerate(images[:20]):
        Image.fromarray(img).save(tmp_path / "imgs" / "clean" / f"{k}.png")
        Image.fromarray(_plant(img, 32, 1)).save(tmp_path / "imgs" / "seam" / f"{k}.png")
    res = subprocess.run([sys.executable, "-m", "streetsynth.cli", "seam-calibrate", "--images",
                          str(tmp_path / "imgs"), "--edge-fraction", str(EDGE / W), "--target-far", "0.05",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "column-sum: threshold for false-accept <= 0.05" in res.stdout and "false-reject" in res.stdout
    assert "row-band: threshold for false-accept <= 0.05" in res.stdout
    assert (tmp_path / "out" / "roc.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def calibration():
    """Both methods' scores on the same 30 sample-maker scenes (96x192, edge at 128): realistic mismatches
    composited as the generator does, and hard clean content on the edge."""
    from streetsynth.builders.sample import render_panorama

    imgs = [render_panorama(np.random.default_rng(s), H, W, H * 0.43, s % 5 == 4, 4, 3)[0] for s in range(30)]
    return {m: rates(*calibration_scores(imgs, EDGE, m), t)
            for m, t in (("column-sum", DEFAULT_THRESHOLD), ("row-band", ROW_BAND_THRESHOLD))}


def test_row_band_rejects_less_hard_clean_content_and_passes_fewer_seams_than_column_sum(calibration):
    # Measured when written: column-sum false accept 0.85, false reject 0.11 (building edge 0.17, shadow 0.37);
    # row-band 0.78 and 0.01 (shadow 0.03). Far from the goal (<= 2 % at <= 3 %): a shifted fill or a
    # neighbouring scene's half passes both methods nearly always.
    cs, rb = calibration["column-sum"], calibration["row-band"]
    assert rb["false_reject"] <= 0.03 < cs["false_reject"]
    assert rb["false_accept"] < cs["false_accept"] <= 0.9
    assert rb["reject:building-edge"] <= 0.05 and rb["reject:shadow"] <= 0.1 and rb["reject:pole"] <= 0.05
    assert rb["accept:colour-cast"] <= 0.8 and cs["accept:colour-cast"] >= 0.9


def test_row_band_scores_a_full_height_step_above_a_half_height_one(scenes):
    img = scenes[0][0]
    full, half = img.astype(np.float32), img.astype(np.float32)
    full[:, EDGE:] += 40
    half[H // 2:, EDGE:] += 40
    full, half = (np.clip(a, 0, 255).astype(np.uint8) for a in (full, half))
    assert row_band_score(full, _mask()) > ROW_BAND_THRESHOLD >= row_band_score(half, _mask())
    assert row_band_score(img, np.zeros((H, W), np.uint8)) == 0.0
    with pytest.raises(ValueError, match="unknown seam method"):
        SeamGate(method="nope")


def test_each_method_defaults_to_its_own_calibrated_threshold():
    assert SeamGate().threshold == DEFAULT_THRESHOLD
    assert SeamGate(method="row-band").threshold == ROW_BAND_THRESHOLD != DEFAULT_THRESHOLD
    assert SeamGate(method="row-band", threshold=1.0).threshold == 1.0
