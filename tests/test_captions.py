"""Caption sources: template, manual prompts files, CLIP phrase scoring with a tiny random CLIP, and
BLIP captions with a tiny random BLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streetsynth.builders.captions import (BlipCaptioner, CaptionContext, ClipCaptioner, ManualCaptioner,
                                           TemplateCaptioner, counts_phrase, make_captioner)

IMAGE = np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)


def test_template_uses_conditions_and_counts():
    ctx = CaptionContext("s_1", "Night", "location_sf", "rain", {"vehicle": 3, "pedestrian": 1, "cyclist": 0})
    text = TemplateCaptioner()(IMAGE, ctx)
    assert text == "a wide street scene at night in rain weather in San Francisco, with 3 vehicles and 1 pedestrian"


def test_template_without_objects_or_conditions():
    assert TemplateCaptioner()(IMAGE, CaptionContext("s_1")) == "a wide street scene"
    assert counts_phrase({}) == ""


def test_manual_lines_are_used_in_turn(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("first\n\nsecond\nthird\n")
    cap = make_captioner("manual", prompts=f)
    got = [cap(IMAGE, CaptionContext("x", frame_index=k, segment_index=1)) for k in range(4)]
    assert got == ["second", "third", "first", "second"]
    assert cap.source == "manual"


def test_manual_csv_by_id(tmp_path):
    f = tmp_path / "prompts.csv"
    f.write_text('id,prompt\nseg_1,"a quiet street, at noon"\nseg_2,busy crossing\n')
    cap = ManualCaptioner.from_file(f)
    assert cap(IMAGE, CaptionContext("seg_1")) == "a quiet street, at noon"
    assert cap(IMAGE, CaptionContext("seg_2")) == "busy crossing"
    with pytest.raises(ValueError, match="no prompt for frame id seg_3"):
        cap(IMAGE, CaptionContext("seg_3"))


def test_manual_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_captioner("manual", prompts=tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="no prompts"):
        make_captioner("manual", prompts=tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="prompts file"):
        make_captioner("manual")
    with pytest.raises(ValueError, match="known: manual, template, clip, blip"):
        make_captioner("gpt")


def tiny_clip():
    """A random CLIP (text + vision, hidden size 32) and a processor with a byte-level tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from streetsynth.models.tiny_inpaint import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                            crop_size={"height": 32, "width": 32}), tokenizer=tok)
    return CLIPModel(cfg), proc


def test_clip_composes_the_best_phrase_of_each_group():
    model, proc = tiny_clip()
    vocab = {"place": ("a city street", "a highway"), "light": ("in daylight", "at night"),
             "weather": ("on a sunny day", "in the rain")}
    cap = ClipCaptioner(model, proc, vocabulary=vocab)
    scores = cap.scores(IMAGE)
    best = {g: max(s, key=s.get) for g, s in scores.items()}
    assert len({v for s in scores.values() for v in s.values()}) > 1  # phrases are told apart
    text = cap(IMAGE, CaptionContext("x", counts={"vehicle": 2}))
    assert text == f"a photo of {best['place']} {best['light']}, {best['weather']}, with 2 vehicles"
    assert cap(IMAGE, CaptionContext("x", counts={"vehicle": 2})) == text  # deterministic
    assert cap.source == "clip"


def test_clip_loads_by_path(tmp_path):
    model, proc = tiny_clip()
    model.save_pretrained(tmp_path / "clip")
    proc.save_pretrained(tmp_path / "clip")
    injected = ClipCaptioner(model, proc)(IMAGE, CaptionContext("x"))
    loaded = make_captioner("clip", model=str(tmp_path / "clip"))
    assert loaded(IMAGE, CaptionContext("x")) == injected


def tiny_blip(tmp_path):
    """A random BLIP captioner (text + vision, hidden size 32) and a BlipProcessor built offline:
    a BertTokenizer from a vocab.txt the test writes, with ``[DEC]`` as its BOS as in BLIP's."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    words = "a street scene of the car road city at night day with and".split()
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *words]) + "\n")
    tok = BertTokenizer(str(tmp_path / "vocab.txt"), bos_token="[DEC]")
    torch.manual_seed(0)
    cfg = BlipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, encoder_hidden_size=32,
                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id,
                         sep_token_id=tok.sep_token_id, eos_token_id=tok.sep_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    proc = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    return BlipForConditionalGeneration(cfg), proc


def test_blip_captions_and_loads_by_path(tmp_path):
    model, proc = tiny_blip(tmp_path)
    cap = BlipCaptioner(model, proc, max_new_tokens=5)
    text = cap(IMAGE, CaptionContext("x"))
    assert isinstance(text, str) and text.startswith("a street scene of")  # the prompt prefix, then BLIP's words
    assert "[DEC]" not in text and cap(IMAGE, CaptionContext("x")) == text  # special tokens dropped; greedy
    assert cap.source == "blip"
    model.save_pretrained(tmp_path / "blip")
    proc.save_pretrained(tmp_path / "blip")
    loaded = make_captioner("blip", model=str(tmp_path / "blip"))
    loaded.max_new_tokens = 5
    assert isinstance(loaded, BlipCaptioner) and loaded.source == "blip"
    assert loaded(IMAGE, CaptionContext("x")) == text


def test_binary_prompts_file_names_the_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe binary")
    with pytest.raises(ValueError, match=f"{path}: prompts file is not UTF-8 text \\(byte 0"):
        ManualCaptioner.from_file(path)


def test_unknown_caption_model_offline_says_what_is_missing_and_where_it_would_come_from(tmp_path):
    from streetsynth.builders.captions import make_captioner

    with pytest.raises(ValueError) as exc:
        make_captioner("clip", model="nobody/no-such-clip")
    msg = str(exc.value)
    assert msg.startswith("--caption-model nobody/no-such-clip: CLIPModel cannot be loaded: config.json is not in "
                          "the Hugging Face cache ")
    assert "it would be downloaded from https://huggingface.co/nobody/no-such-clip (HF_HUB_OFFLINE=1" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"the local folder {tmp_path / 'empty'} lacks config.json"):
        make_captioner("blip", model=str(tmp_path / "empty"))
