"""The seam gate on rendered street scenes with planted seams of known strength, and on realistic
mismatches and hard clean content from the sample maker (calibration seeds 0..29, held-out seeds 100..159).

Default (``profile``) rates on the 100 factory scenes (96x192, edge at x=128), measured when written: seams
of 16, 24 and 32 levels passed 0%; clean, pole and building-edge scenes rejected 0%, 0% and 1%
(``column-sum`` on the same images: 6% / 0% / 0% passed; 11%, 12%, 36% rejected).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from factories_generate import street_image

from streetsynth.generators.seam import (COLUMN_SUM_THRESHOLD, DEFAULT_THRESHOLD, PROFILE_THRESHOLD, ROW_BAND_THRESHOLD,
                                         THRESHOLDS, SeamGate, calibration_scores, mask_edges, profile_score, rates,
                                         roc_table, row_band_score, seam_score, threshold_for_far)

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


def _rate(images, reject=True, method="profile"):
    gate = SeamGate(method=method)
    scores = np.array([gate.score(i, _mask()) for i in images])
    return float(np.mean(scores > gate.threshold if reject else scores <= gate.threshold))


def test_mask_edges_are_the_actual_edges():
    m = np.zeros((8, 40), np.uint8)
    m[:, 10:20] = 255
    assert mask_edges(m).tolist() == [10, 20]
    assert mask_edges(np.zeros((8, 40), np.uint8)).tolist() == []
    assert seam_score(np.zeros((8, 40, 3), np.uint8), np.zeros((8, 40), np.uint8)) == 0.0


@pytest.mark.parametrize("strength", [16, 24, 32])
def test_planted_seams_are_rejected(scenes, strength):
    images, rng = scenes
    seamed = [_plant(i, strength, rng.choice([-1, 1])) for i in images]
    assert _rate(seamed, reject=False) <= 0.02  # false accepts; measured 0 at every strength


def test_clean_scenes_pass(scenes):
    assert _rate(scenes[0]) <= 0.02  # false rejects; measured 0 (column-sum: 11 %)


def test_a_pole_on_the_edge_passes(scenes):
    poles = []
    for img in scenes[0]:
        p = img.copy()
        p[:, EDGE:EDGE + 3] = 30
        poles.append(p)
    assert _rate(poles) <= 0.02  # measured 0 (column-sum: 12 %)


def test_a_building_edge_on_the_seam_passes_profile_not_column_sum(scenes):
    images, _ = scenes
    rng = np.random.default_rng(1)
    built = []
    for img in images:
        b = img.copy()
        b[int(rng.integers(5, 40)):50, EDGE:EDGE + 40] = rng.uniform(40, 200, 3).astype(np.uint8)
        built.append(b)
    # a real step through a building's height: local in rows, so profile passes it (measured 1 % rejected);
    # column-sum's strips see it as a seam (measured 36 %)
    assert _rate(built) <= 0.03 and _rate(built, method="column-sum") >= 0.25


def test_a_seam_elsewhere_than_the_mask_edge_is_not_scored(scenes):
    img = scenes[0][0].astype(np.float32)
    img[:, 40:] += 40  # far from the mask edge at 128
    img = np.clip(img, 0, 255).astype(np.uint8)
    assert seam_score(img, _mask()) <= COLUMN_SUM_THRESHOLD and profile_score(img, _mask()) <= PROFILE_THRESHOLD
    moved = np.clip(scenes[0][0].astype(np.float32) + np.where(np.arange(W) >= EDGE, 40, 0)[None, :, None], 0, 255)
    assert profile_score(moved.astype(np.uint8), _mask()) > PROFILE_THRESHOLD  # the same step at the edge is


def test_profile_scores_a_mirrored_edge_alike(scenes):
    img = _plant(scenes[0][3], 20, 1)
    left_mask = np.ascontiguousarray(_mask()[:, ::-1])  # invented side on the left
    assert profile_score(np.ascontiguousarray(img[:, ::-1]), left_mask) == pytest.approx(profile_score(img, _mask()))
    assert profile_score(img, np.zeros((H, W), np.uint8)) == 0.0


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
    assert "profile: threshold for false-accept <= 0.05" in res.stdout
    assert (tmp_path / "out" / "roc.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def calibration():
    """Both methods' scores on the same 30 sample-maker scenes (96x192, edge at 128): realistic mismatches
    composited as the generator does, and hard clean content on the edge."""
    return _sample_rates(range(30), H, W, EDGE)


def _sample_scores(seeds, h, w, edge, methods=tuple(THRESHOLDS)):
    """Per method ``(seamed scores by kind, clean scores by kind)`` on sample-maker scenes; ``"night"``: their flags."""
    from streetsynth.builders.sample import render_panorama

    imgs = [render_panorama(np.random.default_rng(s), h, w, h * 0.43, s % 5 == 4, 4, 3)[0] for s in seeds]
    return {m: calibration_scores(imgs, edge, m) for m in methods} | {"night": np.array([s % 5 == 4 for s in seeds])}


def _sample_rates(seeds, h, w, edge, methods=tuple(THRESHOLDS)):
    scores = _sample_scores(seeds, h, w, edge, methods)
    return {m: rates(*scores[m], THRESHOLDS[m]) for m in methods}


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
    assert SeamGate().method == "profile" and SeamGate().threshold == DEFAULT_THRESHOLD == PROFILE_THRESHOLD
    assert SeamGate(method="column-sum").threshold == COLUMN_SUM_THRESHOLD != PROFILE_THRESHOLD
    assert SeamGate(method="row-band").threshold == ROW_BAND_THRESHOLD != DEFAULT_THRESHOLD
    assert SeamGate(method="row-band", threshold=1.0).threshold == 1.0


def test_profile_threshold_keeps_false_rejects_at_3_percent_on_the_calibration_seeds(calibration):
    # PROFILE_THRESHOLD was picked on seeds 0..29 (false reject 0.007 here at 96x192, 0.007 at 256x512); measured
    # false accept 0.133 (neighbour halves 0.60, step and colour cast 0.03), false reject 0.007 (shadow 0.03)
    pr, cs = calibration["profile"], calibration["column-sum"]
    assert pr["false_reject"] <= 0.01 and pr["false_accept"] <= 0.14
    assert pr["false_accept"] < cs["false_accept"] and pr["false_reject"] < cs["false_reject"]


@pytest.fixture(scope="module")
def held_out():
    """Scores of ``profile`` and ``column-sum`` on the same 60 scenes never used to pick parameters
    (seeds 100..159, 96x192, edge at 128), and the scenes' night flags."""
    return _sample_scores(range(100, 160), H, W, EDGE, ("profile", "column-sum"))


def test_profile_beats_column_sum_on_both_rates_on_held_out_scenes(held_out):
    # measured when written: profile false accept 0.143, false reject 0.027; column-sum 0.853 and 0.110
    pr, cs = (rates(*held_out[m], THRESHOLDS[m]) for m in ("profile", "column-sum"))
    assert pr["false_accept"] <= 0.15 and pr["false_reject"] <= 0.035
    assert cs["false_accept"] >= 0.8 and cs["false_reject"] >= 0.09  # the heuristic it replaces, same images


def test_profile_rates_per_kind_on_held_out_scenes(held_out):
    # measured: seams passed: step 0.05, colour cast 0.08, blur 0.02, shift 0.00, neighbour 0.57;
    # clean rejected: clean 0.02, pole 0.02, building edge 0.00, lane marks 0.02, shadow 0.08
    pr, cs = (rates(*held_out[m], THRESHOLDS[m]) for m in ("profile", "column-sum"))
    assert pr["accept:step"] <= 0.07 and pr["accept:colour-cast"] <= 0.1 and pr["accept:blur"] <= 0.04
    assert pr["accept:shift"] <= 0.02 < 0.95 <= cs["accept:shift"]  # the vertical alignment cue finds moved fills
    assert cs["accept:blur"] >= 0.95  # the sharpness cue finds blurred fills; column-sum cannot
    assert pr["accept:neighbour"] <= 0.6  # the blocker (next test)
    assert max(pr["reject:clean"], pr["reject:pole"], pr["reject:lane-marks"]) <= 0.04
    assert pr["reject:building-edge"] <= 0.02 and pr["reject:shadow"] <= 0.1


def test_profile_rejects_every_neighbour_half_from_another_time_of_day(held_out):
    # the neighbour halves that pass are the ones rendered at the same time of day: the same sky, sidewalk and
    # road rows, a building boundary at the edge as in the building-edge case (measured: 35 of 36 pass)
    neighbour = held_out["profile"][0]["neighbour"]
    night = held_out["night"]
    other_time = night != np.roll(night, -1)  # scene k's fill is scene k + 1's right half
    assert other_time.sum() == 24 and (neighbour[other_time] > PROFILE_THRESHOLD).all()


def test_profile_rates_at_256x512_on_held_out_scenes():
    # the same threshold at a larger size (edge at 2/3 of the width); measured profile 0.130 / 0.007,
    # column-sum 0.790 / 0.187 on the same images
    r = {m: rates(*v, THRESHOLDS[m]) for m, v in _sample_scores(range(100, 160), 256, 512, 341,
                                                                  ("profile", "column-sum")).items() if m != "night"}
    assert r["profile"]["false_accept"] <= 0.14 and r["profile"]["false_reject"] <= 0.02
    assert r["column-sum"]["false_accept"] >= 0.75 and r["column-sum"]["false_reject"] >= 0.15
