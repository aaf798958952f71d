"""Quality of a synthetic version: FID/KID on injected features, CLIP score, the info.json block, the card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from factories_generate import make_real_repo, street_image

from streetsynth import codec
from streetsynth.generators.generate import GenerateConfig, run_generation
from streetsynth.generators.quality import (QualityConfig, clip_score, features, fid_kid, measure_quality,
                                            quality_lines, record_quality)
from streetsynth.models.features import INCEPTION_FILE, TinyFeatures, inception_extractor, inception_weights
from streetsynth.models.inpaint import build_tiny
from streetsynth.repo import load_split, read_info


@pytest.fixture(autouse=True)
def _own_datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))


def _real_images(tmp_path, n=24):
    real = make_real_repo(tmp_path / "real", rows=n, seed=1)
    return real, [codec.to_rgb(r["image"]) for r in load_split(real, "stitched", "train")]


def test_fid_is_near_zero_for_the_same_images_and_grows_with_noise_and_shuffling(tmp_path):
    rng = np.random.default_rng(1)
    images = [street_image(rng, 64, 128) for _ in range(24)]  # one distribution of street-like images
    extractor = TinyFeatures()
    feats = lambda imgs: features(((i,) for i in imgs), extractor, (64, 64), 8)[0]  # noqa: E731
    rng = np.random.default_rng(0)
    noised = [np.clip(i + rng.normal(0, 40, i.shape), 0, 255).astype(np.uint8) for i in images]
    shuffled = [rng.permutation(i.reshape(-1, 3)).reshape(i.shape) for i in images]
    same = fid_kid(feats(images), feats(list(reversed(images))))
    noise = fid_kid(feats(images), feats(noised))
    shuffle = fid_kid(feats(images), feats(shuffled))
    half = fid_kid(feats(images[:12]), feats(images[12:]))  # two draws of one distribution: the noise floor
    assert abs(same["fid"]) < 1e-6 * half["fid"]
    assert noise["fid"] > 3 * half["fid"] and shuffle["fid"] > 3 * half["fid"]
    assert noise["kid_mean"] > abs(same["kid_mean"]) and shuffle["kid_mean"] > abs(same["kid_mean"])


def _tiny_clip(path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from streetsynth.models.tiny_inpaint import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4,
                num_hidden_layers=2, max_position_embeddings=77, bos_token_id=len(tok) - 2,
                eos_token_id=len(tok) - 1, pad_token_id=len(tok) - 1)
    vision = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                  image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(path)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tok)
    processor.save_pretrained(path)
    return str(path)


def test_quality_of_a_generated_version_lands_in_info_the_card_and_the_compare_lines(tmp_path):
    from streetsynth.cards.render import render_card

    real, _ = _real_images(tmp_path, n=6)
    res = run_generation(GenerateConfig(real=str(real), out=str(tmp_path / "store"), steps=2, batch_size=2,
                                        pipeline=build_tiny("sd-inpaint"), seam_threshold=1e9, progress=False))
    block = measure_quality(QualityConfig(real=str(real), synthetic=str(res.folder), size=(64, 64),
                                          clip_model=_tiny_clip(tmp_path / "clip"), feature=TinyFeatures(),
                                          lpips=None))
    assert block["counts"] == {"real": 6, "synthetic": 6} and block["feature_extractor"] == TinyFeatures.description
    assert "lpips" not in block  # diversity switched off: nothing loaded, nothing recorded
    # the tiny pipeline invents noise: its region is farther from the real region than whole images are
    assert block["invented_region"]["fid"] > block["images"]["fid"] > 0
    # CLIP score recomputed here from the model's own image and text features, one pair at a time
    from transformers import CLIPModel, CLIPProcessor

    clip_dir = str(tmp_path / "clip")
    model, proc = CLIPModel.from_pretrained(clip_dir).eval(), CLIPProcessor.from_pretrained(clip_dir)
    scores, ids = [], []
    for row in load_split(res.folder, "synthetic", "synthetic"):
        ids.append(row["id"])
        region = codec.to_rgb(row["image"])[:, row["generation"]["known_width"]:]
        inputs = proc(text=[row["generation"]["prompt"]], images=[Image.fromarray(region)], return_tensors="pt",
                      padding=True)
        with torch.no_grad():
            out = model(**inputs)
        scores.append(100 * max(float(torch.cosine_similarity(out.image_embeds, out.text_embeds)[0]), 0.0))
    assert block["clip"]["invented_region"] == pytest.approx(float(np.mean(scores)), rel=1e-4)
    assert block["clip"]["real_region"] is not None
    per_row = block["row_scores"]  # each row's CLIP score of its invented region, by row id
    assert [per_row[i]["quality_clip"] for i in ids] == pytest.approx(scores, abs=1e-3)
    record_quality(res.folder, block)
    info = read_info(res.folder)
    kept = {k: v for k, v in block.items() if k != "row_scores"}
    assert info["quality"] == json.loads(json.dumps(kept)) and info["counts"]["accepted"] == 6
    assert json.loads((res.folder / "meta" / "row_scores.json").read_text()) == per_row  # the sidecar
    card = render_card(res.folder, samples=False)
    assert "Quality against the real scenes" in card and f"{block['invented_region']['fid']:.3f}" in card
    [line] = quality_lines([res.folder])
    assert line.startswith("v0.1.0 quality: FID") and f"{block['clip']['invented_region']:.2f}" in line


def test_clip_score_is_the_mean_clamped_cosine_per_view():
    """Known embeddings: view 0 aligned with the text (cos 1), view 1 at 60 degrees (0.5), view 2 opposite (0)."""
    from types import SimpleNamespace

    angle = {0: 0.0, 1: np.pi / 3, 2: np.pi}

    class Processor:
        def __call__(self, text, images, **_):
            return {"view": torch.tensor([float(np.asarray(i)[0, 0, 0]) for i in images])}

    class Model:
        config = SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=77))
        device = "cpu"

        def __call__(self, view):
            a = torch.tensor([angle[int(v)] for v in view])
            return SimpleNamespace(image_embeds=torch.stack([a.cos(), a.sin()], 1),
                                   text_embeds=torch.tensor([[1.0, 0.0]]).expand(len(view), 2))

    views = [tuple(np.full((4, 4, 3), k, np.uint8) for k in range(3)) for _ in range(5)]
    scores = clip_score(((v, "a street") for v in views), (Model(), Processor()), batch_size=2)
    assert scores == pytest.approx((100.0, 50.0, 0.0))


def test_missing_inception_weights_name_the_file_needed(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=INCEPTION_FILE) as err:
        inception_weights()
    assert str(tmp_path / "hub" / "checkpoints" / INCEPTION_FILE) in str(err.value)
    (tmp_path / "w.pth").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="not " + INCEPTION_FILE):
        inception_weights(tmp_path / "w.pth")


@pytest.mark.skipif(not (__import__("pathlib").Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE).exists(),
                    reason="the Inception weights are not in torch hub's cache")
def test_the_real_inception_path_when_its_weights_exist(tmp_path):
    real, images = _real_images(tmp_path, n=4)
    (feats,) = features(((i,) for i in images), inception_extractor(), (299, 299), 4)
    assert feats.shape == (4, 2048) and abs(fid_kid(feats, feats.flip(0))["fid"]) < 1e-3


def test_lpips_is_the_papers_formula_as_torchmetrics_computes_it_zero_on_itself_and_symmetric():
    """Known answer from an independent implementation: torchmetrics' LPIPS with the same random backbone and the
    published linear layers it ships; LPIPS(x, x) = 0 and LPIPS(x, y) = LPIPS(y, x)."""
    from torchmetrics.functional.image.lpips import _LPIPS

    from streetsynth.models.lpips import LPIPS, linear_file, read_linear

    torch.manual_seed(0)
    ref = _LPIPS(pretrained=True, net="alex", pnet_rand=True).eval()
    backbone = torch.nn.Sequential(*[m for k in range(1, 6) for m in getattr(ref.net, f"slice{k}")])
    ours = LPIPS("alex", backbone, read_linear(linear_file("alex")), "test")
    gen = torch.Generator().manual_seed(1)
    a, b = (torch.randint(0, 256, (3, 3, 64, 96), generator=gen, dtype=torch.uint8) for _ in range(2))
    with torch.no_grad():
        expected = ref(a.float() / 127.5 - 1, b.float() / 127.5 - 1).flatten()
    assert ours(a, b) == pytest.approx(expected.tolist(), rel=1e-4) and float(expected.min()) > 0
    assert ours(a, b).tolist() == ours(b, a).tolist() and ours(a, a).abs().max() == 0


def test_lpips_grows_with_the_difference_and_rejects_negative_weights():
    from streetsynth.models.lpips import LPIPS, pairwise, tiny_lpips

    lpips = tiny_lpips()
    rng = np.random.default_rng(0)
    base = street_image(rng, 64, 128)
    noised = [base] + [np.clip(base + rng.normal(0, s, base.shape), 0, 255).astype(np.uint8) for s in (5, 20, 60)]
    emb = lpips.embed(torch.from_numpy(np.stack(noised)).permute(0, 3, 1, 2))
    d = pairwise(emb)  # pairs (0,1), (0,2), (0,3), ...: the base against more and more noise first
    assert d[0] < d[1] < d[2] and float(d[0]) > 0
    x = torch.from_numpy(np.stack(noised[:2])).permute(0, 3, 1, 2)
    assert float(d[0]) == pytest.approx(float(lpips(x[:1], x[1:])[0]), rel=1e-5)
    with pytest.raises(ValueError, match="non-negative"):
        LPIPS("alex", lpips.features, [-torch.ones(c) for c in (64, 192, 384, 256, 256)], "bad")


def _seed_blind(loaded):
    """The tiny pipeline made to ignore the seeds it is given: every sample of a source row is the same image."""
    import inspect

    from diffusers import StableDiffusionInpaintPipeline

    class SeedBlind(StableDiffusionInpaintPipeline):
        def __call__(self, *args, generator=None, **kwargs):
            fixed = [torch.Generator().manual_seed(0) for _ in generator] if isinstance(generator, list) else \
                torch.Generator().manual_seed(0)
            return super().__call__(*args, generator=fixed, **kwargs)

        __call__.__signature__ = inspect.signature(StableDiffusionInpaintPipeline.__call__)

    loaded.pipeline.__class__ = SeedBlind
    return loaded


def test_lpips_diversity_is_zero_for_a_generator_that_ignores_its_seed_and_positive_for_one_that_does_not(tmp_path):
    from streetsynth.cards.render import render_card
    from streetsynth.models.lpips import tiny_lpips

    real, _ = _real_images(tmp_path, n=3)
    blocks = {}
    for name, model in (("blind", _seed_blind(build_tiny("sd-inpaint"))), ("seeded", build_tiny("sd-inpaint"))):
        res = run_generation(GenerateConfig(real=str(real), out=str(tmp_path / name), steps=2, batch_size=1, num=6,
                                            pipeline=model, seam_threshold=1e9, progress=False))
        blocks[name] = measure_quality(QualityConfig(real=str(real), synthetic=str(res.folder), size=(64, 64),
                                                     feature=TinyFeatures(), lpips_size=(64, 128),
                                                     lpips_model=tiny_lpips()))
    blind, seeded = blocks["blind"]["lpips"], blocks["seeded"]["lpips"]
    assert blind["source_rows_with_several_samples"] == 3
    for view in ("images", "invented_region"):
        assert blind[view]["within_pairs"] == 3 and blind[view]["within_rows"] == 0.0  # 3 rows x 1 pair each
        assert seeded[view]["within_rows"] > 0 and blind[view]["across_rows"] > 0
        assert blind[view]["across_pairs"] == 3 and blind[view]["real_pairs"] == 3
    # the kept part is the same in every sample of a row: the invented region is where the samples differ
    assert seeded["invented_region"]["within_rows"] > seeded["images"]["within_rows"]
    record_quality(res.folder, blocks["seeded"])
    card = render_card(res.folder, samples=False)
    assert "Diversity (LPIPS)" in card and f"{seeded['invented_region']['within_rows']:.4f}" in card
    [line] = quality_lines([res.folder])
    assert f"{seeded['invented_region']['within_rows']:.4f} within rows" in line


def test_missing_lpips_weights_name_the_file_needed_and_where_it_comes_from(tmp_path, monkeypatch):
    from streetsynth.models.lpips import load_lpips

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth") as err:
        load_lpips("alex")
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value) and "download.pytorch.org" in str(err.value)
    (tmp_path / "backbone.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="vgg.pth .*PerceptualSimilarity"):
        load_lpips("vgg", backbone=tmp_path / "backbone.pth", linear=tmp_path / "nothing" / "vgg.pth")
    with pytest.raises(ValueError, match="unknown LPIPS backbone 'squeeze'"):
        load_lpips("squeeze")


def test_local_lpips_files_load_into_the_real_architecture(tmp_path):
    """The published layout of both files (torchvision state dict, ``lin<k>.model.1.weight``), written here."""
    import torchvision

    from streetsynth.models.lpips import load_lpips, tiny_lpips

    torch.save(torchvision.models.alexnet(weights=None).state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))},
               tmp_path / "alex.pth")
    lpips = load_lpips("alex", tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.pth")
    assert "alexnet-owt-7be5be79.pth + alex.pth" in lpips.description
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert lpips(x[:1], x[1:]).item() > 0 and tiny_lpips().embed(x).shape[0] == 2
