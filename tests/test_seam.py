"""The seam gate: continuity across the known edge, measured on composites of known kinds built here
from two independent renderers, with each kind held out of the calibration that judges it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from seam_scenes import raycast_pairs, sample_pairs

from streetsynth.generators.seam import CUE_SCALES, DEFAULT_THRESHOLD, SeamGate, mask_edges, seam_score
from streetsynth.generators.seam_calibration import cue_table, leave_one_kind_out, roc_table, threshold_for_far
from streetsynth.generators.seam_cues import CUES, edge_cues
from streetsynth.generators.seam_family import (ALL_KINDS, GOOD_KINDS, IMPLAUSIBLE_KINDS, SEAM_KINDS, composites,
                                                edge_mask)
from streetsynth.generators.seam_plausibility import plausibility_score

H, W = 96, 192
EDGE = 128
N = 8  # scenes per source


@pytest.fixture(scope="module")
def family():
    """Every kind's composites of N sample-maker and N ray-cast scenes (96x192, edge at 128)."""
    pairs = sample_pairs(range(N), H, W) + raycast_pairs(range(N), H, W)
    return composites([p[0] for p in pairs], EDGE, ALL_KINDS, others=[p[1] for p in pairs])


def test_mask_edges_are_the_actual_edges():
    m = np.zeros((8, 40), np.uint8)
    m[:, 10:20] = 255
    assert mask_edges(m).tolist() == [10, 20]
    assert mask_edges(np.zeros((8, 40), np.uint8)).tolist() == []
    assert seam_score(np.zeros((8, 40, 3), np.uint8), np.zeros((8, 40), np.uint8)) == 0.0


def test_a_mirrored_edge_scores_alike(family):
    img = family["step-16"][0]
    left = np.ascontiguousarray(edge_mask(img.shape, EDGE)[:, ::-1])  # invented side on the left
    assert seam_score(np.ascontiguousarray(img[:, ::-1]), left) == pytest.approx(seam_score(img, edge_mask(img.shape, EDGE)))


def test_a_step_away_from_the_mask_edge_is_not_scored(family):
    img = family["true"][0].astype(np.float32)
    far, at = img.copy(), img.copy()
    far[:, 40:] += 40
    at[:, EDGE:] += 40
    mask = edge_mask(img.shape, EDGE)
    gate = SeamGate()
    assert gate.accepts(gate.score(np.clip(far, 0, 255).astype(np.uint8), mask))
    assert not gate.accepts(gate.score(np.clip(at, 0, 255).astype(np.uint8), mask))


def test_held_out_rates_per_kind(family):
    # Each kind's rate under a gate fitted without it (good kinds only enter a fit). Measured when written
    # (96x192, 8 + 8 scenes): false accept 0.116, false reject 0.125 overall; passed: shift-2 0.63, shift-4 0.44,
    # shift-8 0.25, shift-16 0.19, other scene, colour cast 0.06, step-8, step-16, step-32, blur, flat, both
    # inpaintings, noise 0; rejected: JPEG q75 0.25, grain 0.19, smoothed 0.13, true 0.06, half-res 0 (one image
    # is 0.06).
    # Far from the goal (<= 2 % at <= 3 %); at 256x512 and 512x1024 see benchmarks/RESULTS.md.
    tables = {k: cue_table(v, EDGE) for k, v in family.items()}
    r = leave_one_kind_out(tables, SEAM_KINDS, GOOD_KINDS)
    assert r["false_accept"] <= 0.12 and r["false_reject"] <= 0.13
    assert max(r[k] for k in ("step-8", "step-32", "blur", "flat", "inpaint-telea", "inpaint-ns", "noise")) == 0.0
    assert max(r[k] for k in ("other-scene", "step-16", "colour-cast", "half-res")) <= 0.07
    assert max(r["true"], r["smooth-1"]) <= 0.13 and max(r["grain"], r["shift-16"]) <= 0.19 and r["jpeg-75"] <= 0.25
    assert r["shift-8"] <= 0.25 and r["shift-4"] <= 0.44 and r["shift-2"] <= 0.63


def test_casts_steps_and_blur_stand_out_from_the_image_itself():
    """Cues judged against the image, not against every image: a colour cast steps the chromaticity,
    which texture and shading leave alone; an 8-level step stands out from the steps the same image
    takes at nearby columns; a strong blur leaves the fill no edge as sharp as the known part's."""
    pairs = raycast_pairs(range(30, 36), 256, 512) + sample_pairs(range(30, 36), 256, 512)
    kinds = {k: ALL_KINDS[k] for k in ("true", "jpeg-75", "smooth-1", "half-res", "colour-cast", "blur", "step-8")}
    fam = composites([p[0] for p in pairs], 341, kinds, others=[p[1] for p in pairs])
    cue = {k: {c: np.array([edge_cues(i, 341)[c] for i in v]) for c in ("chroma", "local_level", "sharpness")}
           for k, v in fam.items()}
    goods = ("true", "jpeg-75", "smooth-1", "half-res")
    chroma_scale = CUE_SCALES[CUES.index("chroma")]
    # measured: good kinds' chroma at most 0.98, colour casts 0.99-13.2 (10 of 12 above the shipped scale 1.23)
    assert max(cue[k]["chroma"].max() for k in goods) <= chroma_scale
    assert (cue["colour-cast"]["chroma"] > chroma_scale).sum() >= 10
    # measured: median local level 0.11 for true continuations, 3.3 for 8-level steps, higher on 11 of 12 scenes
    assert np.median(cue["step-8"]["local_level"]) > 5 * np.median(cue["true"]["local_level"])
    assert (cue["step-8"]["local_level"] > cue["true"]["local_level"]).sum() >= 11
    # measured: true and JPEG q75 continuations at most 0.73, blur sigma 4-8 at least 1.29 but on one scene
    # whose fill has no row block of enough contrast (0)
    assert max(cue[k]["sharpness"].max() for k in ("true", "jpeg-75")) <= 0.75
    assert (cue["blur"]["sharpness"] >= 1.25).sum() >= 11


def test_inpainting_leaves_the_fill_no_vertical_edge():
    """The vertical cue: OpenCV's inpainting draws every row on along the edge, so poles, building sides
    and car sides stop at it; true, recompressed, smoothed, grainy and half-resolution continuations keep
    theirs, whatever the scene puts on either side."""
    pairs = raycast_pairs(range(40, 46), 256, 512) + sample_pairs(range(40, 46), 256, 512)
    kinds = {k: ALL_KINDS[k] for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res", "inpaint-telea",
                                       "inpaint-ns")}
    fam = composites([p[0] for p in pairs], 341, kinds, others=[p[1] for p in pairs])
    cue = {k: np.array([edge_cues(i, 341)["vertical"] for i in v]) for k, v in fam.items()}
    scale = CUE_SCALES[CUES.index("vertical")]
    # measured: good continuations -0.73..1.43, inpainting 3.59..6.49; the shipped scale is 1.87, threshold 1.36
    assert max(cue[k].max() for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res")) < scale
    assert min(cue[k].min() for k in ("inpaint-telea", "inpaint-ns")) > DEFAULT_THRESHOLD * scale


def test_an_8_level_step_stands_out_of_a_blotchy_facade_in_gray():
    """The gray_level cue: a brightness step of 8 levels on the ray-caster's textured facades moves the median
    gray step of every third of the height past the shipped limit, while the facade's own texture keeps the
    true, recompressed, smoothed, grainy and half-resolution continuations well under it."""
    pairs = raycast_pairs(range(80, 92), 256, 512)
    kinds = {k: ALL_KINDS[k] for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res", "step-8")}
    fam = composites([p[0] for p in pairs], 341, kinds, others=[p[1] for p in pairs])
    cue = {k: np.array([edge_cues(i, 341)["gray_level"] for i in v]) for k, v in fam.items()}
    limit = DEFAULT_THRESHOLD * CUE_SCALES[CUES.index("gray_level")]
    # measured: good kinds at most 2.26 (0 on 8 of 12 scenes); steps 4.5-10.3 on 8 of 12, against a limit of about 4
    assert max(cue[k].max() for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res")) <= 2.5
    assert (cue["step-8"] > limit).sum() >= 8


def test_a_vertical_shift_moves_the_structures_that_cross_the_edge():
    """The crossing cue: a fill moved up or down by 4 or 8 px puts the structures that cross the edge
    (a facade's foot, box tops, window rows) off their line; the true, recompressed and smoothed
    continuations keep them on it."""
    pairs = raycast_pairs(range(20, 26), 256, 512) + sample_pairs(range(20, 26), 256, 512)
    kinds = {k: ALL_KINDS[k] for k in ("true", "jpeg-75", "smooth-1", "shift-4", "shift-8")}
    fam = composites([p[0] for p in pairs], 341, kinds, others=[p[1] for p in pairs])
    cue = {k: np.array([edge_cues(i, 341)["crossing"] for i in v]) for k, v in fam.items()}
    # measured: good kinds at most 0.1; shifts 2-8 on 7 of 12 scenes, 0 on the other five (no structure qualifies)
    assert max(cue[k].max() for k in ("true", "jpeg-75", "smooth-1")) <= 1.0
    for k in ("shift-4", "shift-8"):
        assert (cue[k] >= 2.0).sum() >= 7
        assert (cue[k] >= cue["true"]).all()


def test_a_displaced_structure_is_told_from_a_repeating_one():
    """The displaced cue: a fill moved up or down puts a crossing structure's best match away from its line,
    also where a box's or a window's vertical edge leaves no coherent slope for ``crossing``; rows of
    windows that repeat match as well on their line as a period away, so good continuations of window
    grids stay near 0."""
    pairs = raycast_pairs(range(60, 66), 256, 512) + sample_pairs(range(60, 66), 256, 512)
    kinds = {k: ALL_KINDS[k] for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res", "shift-4", "shift-8")}
    fam = composites([p[0] for p in pairs], 341, kinds, others=[p[1] for p in pairs])
    cues = {k: [edge_cues(i, 341) for i in v] for k, v in fam.items()}
    cue = {k: np.array([c["displaced"] for c in v]) for k, v in cues.items()}
    # measured: good kinds at most 1.14 (0 on 8 of 12 scenes); shifts at least 1.9 on 8 of 12 scenes (4 px) and
    # 2 on 8 (8 px); 5 shifts that crossing leaves under the threshold score 1.9-4 here
    assert max(cue[k].max() for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res")) <= 1.2
    for k in ("shift-4", "shift-8"):
        assert (cue[k] >= 1.9).sum() >= 8
    limit = {c: DEFAULT_THRESHOLD * CUE_SCALES[CUES.index(c)] for c in ("crossing", "displaced")}
    crossing = np.concatenate([[c["crossing"] for c in cues[k]] for k in ("shift-4", "shift-8")])
    displaced = np.concatenate([cue["shift-4"], cue["shift-8"]])
    assert ((crossing <= limit["crossing"]) & (displaced > limit["displaced"])).sum() >= 5


def test_another_horizon_beyond_the_near_search_lines_up_further_away():
    """The lag_far cue: another scene's right part puts the kerb, the road edge and the horizon tens of rows
    off at 512x1024, beyond ``lag``'s 24-row search; moved that far it lines up better than in place. True,
    recompressed, smoothed, grainy and half-resolution continuations line up best in place."""
    pairs = sample_pairs(range(60, 72), 512, 1024)
    kinds = {k: ALL_KINDS[k] for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res", "other-scene")}
    fam = composites([p[0] for p in pairs], 683, kinds, others=[p[1] for p in pairs])
    cues = {k: [edge_cues(i, 683) for i in v] for k, v in fam.items()}
    limit = {c: DEFAULT_THRESHOLD * CUE_SCALES[CUES.index(c)] for c in ("lag", "lag_far")}
    far = {k: np.array([c["lag_far"] for c in v]) for k, v in cues.items()}
    near = np.array([c["lag"] for c in cues["other-scene"]])
    # measured: good kinds -0.85..0.25; another scene 0.24-0.95, above the shipped limit (0.44) on 7 of 12,
    # 2 of them under lag's
    assert max(far[k].max() for k in ("true", "jpeg-75", "smooth-1", "grain", "half-res")) <= 0.3
    assert (far["other-scene"] > limit["lag_far"]).sum() >= 7
    assert ((far["other-scene"] > limit["lag_far"]) & (near <= limit["lag"])).sum() >= 2


def test_the_default_gate_at_a_generator_size():
    """The shipped scales and threshold (fitted at 256x512 and 512x1024 on scenes 100-199) on new ones:
    steps of 32 levels, flat and noise fills, strong blurs, 8-px shifts, colour casts and inpainted fills are
    rejected; true, recompressed and smoothed continuations pass, but for one facade that steps by itself."""
    pairs = sample_pairs(range(20, 23), 256, 512) + raycast_pairs(range(20, 23), 256, 512)
    kinds = {k: ALL_KINDS[k] for k in ("true", "jpeg-75", "smooth-1", "step-32", "flat", "noise", "blur", "shift-8",
                                       "colour-cast", "inpaint-telea", "inpaint-ns")}
    family = composites([p[0] for p in pairs], 341, kinds, others=[p[1] for p in pairs])
    gate, mask = SeamGate(), edge_mask((256, 512), 341)
    passed = {k: [gate.accepts(gate.score(i, mask)) for i in v] for k, v in family.items()}
    assert not any(passed["step-32"] + passed["flat"] + passed["noise"] + passed["blur"])
    # measured: shifts 5.7, 5.7, 2.5 on the sample maker's scenes, 1.9, 2.7 and 1.9 on the ray-caster's, colour
    # casts 1.8-10.3, inpainting 2.2-3.5, against the threshold 1.36; good continuations at most 0.82, but for one
    # ray-cast facade that steps 5-7 levels across the edge in every third of the height by itself (1.67 true,
    # 1.83 recompressed, 2.21 smoothed: gray_level, rejected); on 30 + 30 other scenes the default gate rejects
    # 2-4 % of good continuations (benchmarks/RESULTS.md)
    assert sum(passed["shift-8"]) == 0
    assert sum(passed["colour-cast"] + passed["inpaint-telea"] + passed["inpaint-ns"]) == 0
    assert sum(passed["true"] + passed["jpeg-75"] + passed["smooth-1"]) >= 15


def test_plausibility_tells_copies_from_new_content(family):
    mask = edge_mask(family["true"][0].shape, EDGE)
    good = np.array([plausibility_score(i, mask) for k in GOOD_KINDS for i in family[k]])
    copies = np.array([plausibility_score(i, mask) for k in IMPLAUSIBLE_KINDS for i in family[k]])
    assert np.median(copies) < 0.5 < np.quantile(good, 0.05)
    assert np.isnan(plausibility_score(family["true"][0], np.zeros(mask.shape, np.uint8)))


def test_roc_and_threshold_for_far():
    table = roc_table(np.array([5.0, 6.0, 7.0, 0.5]), np.array([0.1, 0.2, 3.0]))
    t, far, frr = threshold_for_far(np.array([5.0, 6.0, 7.0, 0.5]), np.array([0.1, 0.2, 3.0]), 0.25)
    assert (t, far) == (3.0, 0.25) and frr == 0.0
    assert table[0] == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        threshold_for_far(np.array([]), np.array([1.0]), 0.05)


def test_seam_calibrate_command_on_folders(tmp_path, family):
    from PIL import Image

    for sub, kind in (("seam", "step-32"), ("clean", "true")):
        (tmp_path / "imgs" / sub).mkdir(parents=True)
        for k, img in enumerate(family[kind]):
            Image.fromarray(img).save(tmp_path / "imgs" / sub / f"{k}.png")
    res = subprocess.run([sys.executable, "-m", "streetsynth.cli", "seam-calibrate", "--images", str(tmp_path / "imgs"),
                          "--edge-fraction", str(EDGE / W), "--target-far", "0.1", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "threshold for false-accept <= 0.1" in res.stdout and f"default threshold is {DEFAULT_THRESHOLD}" in res.stdout
    assert (tmp_path / "out" / "roc.png").stat().st_size > 1000


def test_calibrate_scenes_reports_every_kind_and_a_threshold_for_the_target(family):
    # what `seam-calibrate --dataset` prints: the held-out rate of every kind and the fit on all good kinds
    from streetsynth.generators.seam_calibration import calibrate_scenes

    pairs = sample_pairs(range(3), H, W)
    r = calibrate_scenes([p[0] for p in pairs], EDGE, [p[1] for p in pairs], target_fr=0.0)
    assert set(r["held_out"]) == set(SEAM_KINDS) | set(GOOD_KINDS) | {"false_accept", "false_reject"}
    good = np.concatenate([r["scores"][k] for k in GOOD_KINDS])
    assert r["threshold"] == pytest.approx(good.max()) and len(r["scales"]) == len(CUES)
    assert (r["scores"]["step-32"] > r["threshold"]).all() and (r["scores"]["noise"] > r["threshold"]).all()
