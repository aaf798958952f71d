"""Mask R-CNN detectors: build them by architecture name, save and load our checkpoints, load COCO ones.

Our checkpoint is a folder with ``config.json`` (``arch``, ``num_classes``, ``class_names``,
``min_size``, ``max_size``, and where a run set them ``anchor_sizes``, ``aspect_ratios``,
``frozen_norm``) and ``model.safetensors`` (the state dict); label ``i + 1`` of such a
model is ``class_names[i]``. COCO-trained models (torchvision weights or a state-dict file) are
mapped onto our classes by :func:`coco_class_map`. Nothing is ever unpickled from outside:
safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streetsynth.digest import file_digest
from streetsynth.repo import atomic_write_bytes, atomic_write_text
from streetsynth.schema import CLASS_NAMES

ARCHS = ("v2", "v1", "mobilenet", "tiny")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Number of labels of a torchvision COCO detector (background + 90 category ids).
COCO_NUM_CLASSES = 91
#: COCO category id -> CLASS_NAMES index, always mapped: person, car, motorcycle, bus, truck.
COCO_TO_CLASS: dict[int, int] = {1: CLASS_NAMES.index("pedestrian"), 3: CLASS_NAMES.index("vehicle"),
                                 4: CLASS_NAMES.index("vehicle"), 6: CLASS_NAMES.index("vehicle"),
                                 8: CLASS_NAMES.index("vehicle")}
COCO_BICYCLE, COCO_STOP_SIGN = 2, 13
#: Resize defaults per architecture (shorter side, longest side cap).
DEFAULT_SIZES: dict[str, tuple[int, int]] = {"v2": (800, 1333), "v1": (800, 1333), "mobilenet": (800, 1333),
                                             "tiny": (128, 256)}
#: Stride of each feature map the RPN sees (one anchor size per map), per architecture.
FEATURE_STRIDES: dict[str, tuple[int, ...]] = {"v2": (4, 8, 16, 32, 64), "v1": (4, 8, 16, 32, 64),
                                               "mobilenet": (32, 32, 64), "tiny": (8, 16, 32, 64)}


def coco_class_map(cyclist: bool = False, sign: bool = False) -> dict[int, int]:
    """COCO label id -> CLASS_NAMES index; bicycle -> cyclist and stop sign -> sign only when asked."""
    out = dict(COCO_TO_CLASS)
    if cyclist:
        out[COCO_BICYCLE] = CLASS_NAMES.index("cyclist")
    if sign:
        out[COCO_STOP_SIGN] = CLASS_NAMES.index("sign")
    return out


def own_class_map(class_names: list[str]) -> dict[int, int]:
    """Label ``i + 1`` -> CLASS_NAMES index of ``class_names[i]`` (names we do not know are dropped)."""
    return {i + 1: CLASS_NAMES.index(n) for i, n in enumerate(class_names) if n in CLASS_NAMES}


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown detector architecture {arch!r}; known: {', '.join(ARCHS)}")


def _weights_enum(arch: str):
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

    if arch == "v2":
        return MaskRCNN_ResNet50_FPN_V2_Weights
    if arch == "v1":
        return MaskRCNN_ResNet50_FPN_Weights
    raise ValueError(f"architecture {arch!r} has no torchvision Mask R-CNN weights; use v1 or v2, or a file")


def resolve_weights(name: str, enum=None):
    """A torchvision weights enum from ``"DEFAULT"``, ``"COCO_V1"`` or ``"Enum.MEMBER"``; checks the local cache.

    Raises OSError naming the cache file when the weights are not cached and the machine is
    offline (``HF_HUB_OFFLINE``/``TORCH_HOME`` unreachable), since nothing may download then.
    """
    from torchvision.models import get_weight

    try:
        weights = get_weight(name) if "." in name else enum[name] if enum is not None else None
    except (KeyError, ValueError, AttributeError) as exc:
        raise ValueError(f"unknown torchvision weights {name!r}: {exc}") from exc
    if weights is None:
        raise ValueError(f"torchvision weights {name!r} need an enum name, e.g. MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get("STREETSYNTH_OFFLINE")
    if not cached.exists() and offline:
        raise OSError(f"torchvision weights {weights} are not available offline: {cached} is not cached "
                      "(download it on a machine with network, or pass a local .safetensors/.pth file)")
    return weights


def _replace_heads(model, num_classes: int) -> None:
    """Swap the box and mask predictors for fresh ones with ``num_classes`` outputs (fine-tuning from COCO)."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    box = model.roi_heads.box_predictor
    model.roi_heads.box_predictor = FastRCNNPredictor(box.cls_score.in_features, num_classes)
    mask = model.roi_heads.mask_predictor
    model.roi_heads.mask_predictor = MaskRCNNPredictor(mask.conv5_mask.in_channels, mask.conv5_mask.out_channels,
                                                       num_classes)


def _tiny(num_classes: int, min_size: int, max_size: int):
    """MobileNetV3-small body, a 64-channel FPN over three levels and light heads: fast on a CPU."""
    from torchvision.models import mobilenet_v3_small
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    ch = 64
    body = mobilenet_v3_small(weights=None).features  # strides 8, 16, 32 at stages 3, 8, 12
    backbone = BackboneWithFPN(body, {"3": "0", "8": "1", "12": "2"}, [24, 48, 576], ch)
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4)
    names = ["0", "1", "2"]
    return MaskRCNN(
        backbone, num_classes=None, min_size=min_size, max_size=max_size,
        rpn_anchor_generator=anchors, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=200, box_batch_size_per_image=128,
        box_detections_per_img=50,
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2), mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        box_head=TwoMLPHead(ch * 7 * 7, 256), box_predictor=FastRCNNPredictor(256, num_classes),
        mask_head=MaskRCNNHeads(ch, (ch, ch), 1), mask_predictor=MaskRCNNPredictor(ch, ch, num_classes),
    )


def set_anchors(model, sizes: list[list[float]], ratios: list[float]) -> None:
    """Anchor sizes per feature map and the same aspect ratios (height / width) on every map.

    Where the number of anchors per location changes, the RPN head is rebuilt (fresh weights, so
    only for a model about to be trained from scratch or loaded from our own checkpoint).
    """
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.rpn import RPNHead

    old = model.rpn.anchor_generator
    if len(sizes) != len(old.sizes):
        raise ValueError(f"anchors need sizes for {len(old.sizes)} feature maps, got {len(sizes)}")
    new = AnchorGenerator(tuple(tuple(float(s) for s in level) for level in sizes),
                          (tuple(float(r) for r in ratios),) * len(sizes))
    n = new.num_anchors_per_location()[0]
    if n != old.num_anchors_per_location()[0]:
        head = model.rpn.head
        depth = len(head.conv)
        model.rpn.head = RPNHead(head.cls_logits.in_channels, n, conv_depth=depth)
    model.rpn.anchor_generator = new


def anchor_shapes(model) -> tuple[list[list[float]], list[float]]:
    """The model's anchor sizes per feature map and aspect ratios (height / width)."""
    gen = model.rpn.anchor_generator
    return [[float(s) for s in level] for level in gen.sizes], [float(r) for r in gen.aspect_ratios[0]]


def freeze_backbone_norm(model) -> int:
    """Replace the backbone body's BatchNorm layers by FrozenBatchNorm2d holding their statistics.

    torchvision's ``maskrcnn_resnet50_fpn_v2`` keeps plain BatchNorm in its ResNet even when it
    loads pretrained weights, so fine-tuning with 2-4 images per process drifts the pretrained
    running statistics (frozen layers included); v1 freezes them, and so do we for v2 when it
    starts from pretrained weights. Returns how many layers were frozen.
    """
    from torchvision.ops.misc import FrozenBatchNorm2d

    count = 0
    for parent in list(model.backbone.body.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(child, key).detach())
                setattr(parent, name, frozen)
                count += 1
    return count


def build_maskrcnn(arch: str = "v2", num_classes: int = len(CLASS_NAMES) + 1, weights: str | None = None,
                   weights_backbone: str | None = None, min_size: int | None = None, max_size: int | None = None,
                   anchor_sizes: list[float] | None = None, aspect_ratios: list[float] | None = None,
                   frozen_norm: bool | None = None):
    """A torchvision ``MaskRCNN`` by architecture name: ``v2``, ``v1``, ``mobilenet`` or ``tiny``.

    ``weights`` is a torchvision weights name (``"DEFAULT"``, ``"MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1"``)
    or a state-dict file (.safetensors, .pth); COCO weights with another ``num_classes`` get fresh
    predictor heads. ``min_size``/``max_size`` default to the architecture's (800/1333; tiny 128/256).
    ``anchor_sizes``/``aspect_ratios`` replace the default anchors (see :func:`set_anchors`);
    ``frozen_norm`` freezes v2's backbone BatchNorm (default: when it starts from pretrained weights).
    """
    from torchvision.models import detection

    _check_arch(arch)
    dmin, dmax = DEFAULT_SIZES[arch]
    min_size, max_size = min_size or dmin, max_size or dmax
    state = None
    enum = None
    if weights is not None and Path(weights).suffix in (".safetensors", ".pth", ".pt", ".bin"):
        state = read_state_dict(weights)
        weights = None
    elif weights is not None:
        enum = resolve_weights(weights, _weights_enum(arch))
    backbone_enum = None
    if weights_backbone is not None and arch != "tiny":
        from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights

        backbone_enum = resolve_weights(weights_backbone,
                                        MobileNet_V3_Large_Weights if arch == "mobilenet" else ResNet50_Weights)
    head_classes = COCO_NUM_CLASSES if enum is not None else (
        _state_num_classes(state) if state is not None else num_classes)
    kw = {"min_size": min_size, "max_size": max_size}
    if arch == "v2":
        model = detection.maskrcnn_resnet50_fpn_v2(weights=enum, weights_backbone=backbone_enum,
                                                   num_classes=head_classes, **kw)
    elif arch == "v1":
        model = detection.maskrcnn_resnet50_fpn(weights=enum, weights_backbone=backbone_enum,
                                                num_classes=head_classes, **kw)
    elif arch == "mobilenet":
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.backbone_utils import mobilenet_backbone

        backbone = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=backbone_enum, fpn=True,
                                      trainable_layers=6 if backbone_enum is None else 3)
        sizes = ((32, 64, 128, 256, 512),) * 3
        model = detection.MaskRCNN(backbone, num_classes=head_classes,
                                   rpn_anchor_generator=AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 3), **kw)
    else:
        model = _tiny(head_classes, min_size, max_size)
    if frozen_norm is None:
        frozen_norm = arch == "v2" and (enum is not None or backbone_enum is not None)
    if frozen_norm:
        freeze_backbone_norm(model)
    if anchor_sizes is not None or aspect_ratios is not None:
        sizes, ratios = anchor_shapes(model)
        set_anchors(model, anchor_sizes or sizes, aspect_ratios or ratios)
    if state is not None:
        _load_state(model, state, str(weights))
    if head_classes != num_classes:
        _replace_heads(model, num_classes)
    return model


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or a .pth/.pt file through ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling refusal is reported the same way
        raise ValueError(f"{path}: not a plain state dict loadable with weights_only=True ({exc})") from exc
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def _state_num_classes(state: dict[str, torch.Tensor]) -> int:
    key = "roi_heads.box_predictor.cls_score.weight"
    if key not in state:
        raise ValueError(f"not a Mask R-CNN state dict (no {key})")
    return int(state[key].shape[0])


def infer_arch(state: dict[str, torch.Tensor]) -> str:
    """Which of our architectures a state dict belongs to, from its key layout."""
    if "backbone.body.12.0.weight" in state:
        return "tiny"
    if any(k.startswith("backbone.body.0.") for k in state):
        return "mobilenet"
    if "roi_heads.box_head.0.0.weight" in state:
        return "v2"
    if "roi_heads.box_head.fc6.weight" in state:
        return "v1" if "backbone.body.layer1.0.conv3.weight" in state else "tiny"
    raise ValueError("cannot tell the Mask R-CNN architecture from this state dict")


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:3]
        raise ValueError(f"{where}: weights do not fit the model: {' '.join(first)}") from exc


def save_checkpoint_dir(model: nn.Module, config: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write our checkpoint folder: ``config.json`` and ``model.safetensors`` (each atomically)."""
    from safetensors.torch import save

    for key in ("arch", "num_classes"):
        if key not in config:
            raise ValueError(f"detector config needs {key!r}; got keys {sorted(config)}")
    _check_arch(config["arch"])
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(path / WEIGHTS_FILE, save(state))
    config = {"class_names": list(CLASS_NAMES), **config}
    atomic_write_text(path / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def build_tiny_detector(seed: int = 0, num_classes: int = COCO_NUM_CLASSES):
    """The seeded random tiny model with COCO-style labels, nudged to say person and car.

    A random head scores every one of 91 labels at about 1/91; raising the person and car biases
    makes the tiny model return detections of our classes, and raising the mask bias fills their
    boxes, so the labeler's wiring is exercised. It keeps at most 6 detections per image.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_maskrcnn("tiny", num_classes=num_classes)
    with torch.no_grad():
        bias = model.roi_heads.box_predictor.cls_score.bias
        for label in (1, 3):
            if label < len(bias):
                bias[label] += 4.0
        model.roi_heads.mask_predictor.mask_fcn_logits.bias += 4.0
    model.roi_heads.detections_per_img = 6
    return model


def load_detector(spec: str, device: str = "cpu", cyclist: bool = False, sign: bool = False
                  ) -> tuple[nn.Module, dict[int, int], str]:
    """``(model in eval mode, label id -> CLASS_NAMES index, description)`` from a spec.

    ``spec``: ``"tiny"`` (seeded random, COCO labels); a torchvision weights name (``"DEFAULT"``,
    ``"MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1"``; loaded only from the local cache when offline);
    a COCO state-dict file (.safetensors/.pth); or one of our checkpoint folders.
    ``cyclist``/``sign`` also map COCO bicycle and stop sign.
    """
    path = Path(spec)
    coco = coco_class_map(cyclist=cyclist, sign=sign)
    if spec == "tiny":
        model, cmap, desc = build_tiny_detector(0), coco, "maskrcnn:tiny(seed=0)"
    elif path.is_dir():
        cfg_path = path / CONFIG_FILE
        if not cfg_path.is_file() or not (path / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{path}: not a detector checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            cfg = json.loads(cfg_path.read_text())
            arch, n = cfg["arch"], int(cfg["num_classes"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{cfg_path}: bad detector config ({exc})") from exc
        model = build_maskrcnn(arch, num_classes=n, min_size=cfg.get("min_size"), max_size=cfg.get("max_size"),
                               anchor_sizes=cfg.get("anchor_sizes"), aspect_ratios=cfg.get("aspect_ratios"),
                               frozen_norm=bool(cfg.get("frozen_norm", False)))
        _load_state(model, read_state_dict(path / WEIGHTS_FILE), str(path))
        cmap = own_class_map(cfg.get("class_names", list(CLASS_NAMES)))
        desc = f"maskrcnn:{arch}:{path.name}@{file_digest(path / WEIGHTS_FILE)}"
    elif path.suffix in (".safetensors", ".pth", ".pt", ".bin"):
        state = read_state_dict(path)
        arch, n = infer_arch(state), _state_num_classes(state)
        model = build_maskrcnn(arch, num_classes=n)
        _load_state(model, state, str(path))
        if n == COCO_NUM_CLASSES:
            cmap = coco
        elif n == len(CLASS_NAMES) + 1:
            cmap = own_class_map(list(CLASS_NAMES))
        else:
            raise ValueError(f"{path}: {n} labels is neither COCO ({COCO_NUM_CLASSES}) nor ours "
                             f"({len(CLASS_NAMES) + 1}); save it as a checkpoint folder with class_names")
        desc = f"maskrcnn:{arch}:{path.name}@{file_digest(path)}"
    elif "_Weights." not in spec and (path.suffix or os.sep in spec):
        raise FileNotFoundError(f"{spec}: no such detector checkpoint or weights file")
    else:
        name = spec if "." in spec else f"MaskRCNN_ResNet50_FPN_V2_Weights.{spec}"
        arch = "v1" if name.startswith("MaskRCNN_ResNet50_FPN_Weights") else "v2"
        weights = resolve_weights(name)
        model = build_maskrcnn(arch, num_classes=COCO_NUM_CLASSES, weights=name)
        cmap, desc = coco, f"torchvision:{weights}"
    if cyclist or sign:
        desc += f"(cyclist={cyclist},sign={sign})"
    return model.eval().to(device), cmap, desc
