"""Parity with the official SPA code (Pan et al., CVPR 2021): its network, losses, SCG and optimizer next to ours.

The official repository is not part of this project: pass a checkout of Panxjia/SPA_CVPR2021 (the
figures in the report are from @32bf2d5) and this script imports ``models.vgg.vgg_spa``,
``utils.localization`` and ``exper/train_cam_spa.py`` from there. Only VGG16 is compared: the
official code has no InceptionV3 (``models/__init__.py`` imports a ``models/google`` package that
was never released; it is stubbed as an empty module here).

The official network (at :func:`common.deterministic_weights`, He-scaled so that the random VGG16's
features do not vanish) is copied into ours in state-dict order, leaving out its ``conv5_add``
(defined in ``vgg_spa.py`` L54-56, never called). Settings: the CUB scripts
(``scripts/train_spa.sh``, ``scripts/val_spa.sh``) on their side, ``experiments/paper/spa_vgg16_cub.yaml``
on ours (a ``settings`` row checks that the two agree). Compared:

1. eval mode: the logits (official ``val_spa.py`` L241), the class maps ``A``, the SCG feature blocks
   (``feat4`` after pool4, ``feat5``), each block's HSC (official ``VGG.hsc`` + the combination of
   ``val_spa.py`` L287-291, restated here because it is inline in ``val()``; ours
   ``high_order_self_correlation``), and the localization maps for the GT class and the top-1 class:
   official ``get_topk_boxes_hier`` (normalized ReLU CAM) then ``get_topk_boxes_hier_scg`` on
   ``HSC5 + HSC4``, one image at a time as the official batch size 1, vs our ``localize`` (SCG on);
   the plain CAM (``get_topk_boxes_hier``'s map vs our ``scg: false`` ``localize``). Both read the
   image file only for its size; a feature-grid-sized file makes their resizes identities, so the
   maps are compared at feature resolution (our documented round-trip deviation is left out).
   Maps are min-max normalized as both evaluations do; a non-finite raw output counts as infinite.
2. train mode: ``VGG.get_loss`` (CE, ``lambda * L_RA``, total; RAM before and after ``ram_start``)
   vs our ``training_losses`` on fixed labels, and the largest gradient difference of the total loss
   over all parameters, relative to the largest gradient.
3. learning-rate groups: the official ``train_cam_spa.get_model`` optimizer (its ``pretrained=True``
   path fed an empty ``vgg16.pth`` so nothing is downloaded) vs our ``configure_optimizers()``: per
   multiplier of ``lr``, the parameter counts and the names in one and not the other (official names
   mapped to ours by state-dict position), and the SGD settings.

Tolerance: 1e-4 absolute on logits, class maps, blocks, HSC, normalized CAMs and losses (float32
sums of a deep network in a different operation order), 1e-4 relative on gradients, 1e-3 on the
normalized SCG maps (their final min-max of ``m+ - m-`` amplifies float32 rounding: an ``info`` row
shows the official map's own float32-vs-float64 difference); seeds, lr groups and settings must
match exactly. ``info`` rows are not checked. The exit status is 1 when any row exceeds its tolerance (or is NaN), 2
when ``--official`` is not a checkout.

    git clone https://github.com/Panxjia/SPA_CVPR2021 /tmp/SPA_CVPR2021   # on a machine with network
    NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=disabled PYTHONPATH=src python benchmarks/parity/spa.py --official /tmp/SPA_CVPR2021
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import io
import math
import subprocess
import sys
import tempfile
import types
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from common import copy_in_order, deterministic_weights, refuse_shadowed_packages
from torch import nn

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models import get_model
from wsol_lightning.models.components import gather_class_maps
from wsol_lightning.models.components.self_correlation import high_order_self_correlation

TOLERANCE = 1e-4
#: The SCG maps: min-max of ``m+ - m-`` amplifies float32 rounding (the official code's own float32 map
#: is ~7e-5 off its float64 run, the ``rounding floor`` row; ours ~1.5e-4 at 224 px).
SCG_TOLERANCE = 1e-3
REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "experiments" / "paper" / "spa_vgg16_cub.yaml"
#: The official input normalization (``utils/loader.py``); ours normalize inside the network.
OFFICIAL_MEAN, OFFICIAL_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: ``scripts/train_spa.sh`` and ``scripts/val_spa.sh`` (CUB), as the official argparse names them.
OFFICIAL_ARGS = {
    "arch": "vgg_spa", "lr": 0.001, "diff_lr": "True", "ram": True, "ram_start": 20, "ra_loss_weight": 0.5,
    "ram_th_bg": 0.1, "ram_bg_fg_gap": 0.2, "scg": True, "scg_com": True, "scg_blocks": "4,5",
    "scg_fosc_th": 0.1, "scg_sosc_th": 0.5, "scg_so_weight": 2.0, "scg_fg_th": 0.1, "scg_bg_th": 0.05,
    "scg_order": 2,
}
#: Our recipe key -> the official argument above it must equal.
SETTING_KEYS = {
    "lr": "lr", "ram_start_epoch": "ram_start", "ram_weight": "ra_loss_weight",
    "ram_background_threshold": "ram_th_bg", "ram_foreground_gap": "ram_bg_fg_gap",
    "scg_first_order_threshold": "scg_fosc_th", "scg_second_order_threshold": "scg_sosc_th",
    "scg_second_order_weight": "scg_so_weight", "foreground_threshold": "scg_fg_th",
    "background_threshold": "scg_bg_th", "scg_order": "scg_order",
}
#: The official SGD (``train_cam_spa.py`` L118-122).
OFFICIAL_SGD = {"momentum": 0.9, "weight_decay": 0.0005, "nesterov": True}


def _stub(name: str, **attributes) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module


def load_official(official: Path) -> SimpleNamespace:
    """Import the official modules, with shims for what the 2021 code imports that is gone or absent."""
    for path in (official / "exper", official):  # train_cam_spa.py imports my_optim from exper/
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    refuse_shadowed_packages(official, ("models", "utils"))
    # models/__init__.py L6 `from .google import *`: the InceptionV3 package was never released.
    _stub("models.google")
    # Only needed by the training script's logging / data loading / mAP, never called here.
    for name, attributes in (("tensorboardX", {"SummaryWriter": object}), ("imgaug", {}),
                             ("imgaug.augmenters", {}), ("sklearn", {}), ("sklearn.metrics", {})):
        try:
            importlib.import_module(name)
        except ImportError:
            _stub(name, **attributes)
    if "imgaug.augmenters" in sys.modules and not hasattr(sys.modules["imgaug"], "augmenters"):
        sys.modules["imgaug"].augmenters = sys.modules["imgaug.augmenters"]
    if "sklearn.metrics" in sys.modules and not hasattr(sys.modules["sklearn"], "metrics"):
        sys.modules["sklearn"].metrics = sys.modules["sklearn.metrics"]
    # utils/localization.py L158 `np.arange(...).astype(np.int)`: the alias NumPy 1.24 removed.
    if not hasattr(np, "int"):
        np.int = int
    with contextlib.redirect_stdout(io.StringIO()):
        vgg_spa = importlib.import_module("models.vgg.vgg_spa")
        localization = importlib.import_module("utils.localization")
        train = importlib.import_module("train_cam_spa")
    return SimpleNamespace(vgg_spa=vgg_spa, localization=localization, train=train)


def official_args(**overrides) -> SimpleNamespace:
    return SimpleNamespace(**{**OFFICIAL_ARGS, **overrides})


def official_input(images: torch.Tensor) -> torch.Tensor:
    return (images - torch.tensor(OFFICIAL_MEAN).view(1, 3, 1, 1)) / torch.tensor(OFFICIAL_STD).view(1, 3, 1, 1)


def aligned(theirs: nn.Module) -> nn.Module:
    """The official network without its unused ``conv5_add`` (shares the tensors): aligns with ours."""
    return nn.Sequential(OrderedDict((name, getattr(theirs, name)) for name in ("conv1_2", "conv3", "conv4", "conv5", "cls")))


def recipe_init_args() -> dict:
    init_args = dict(yaml.safe_load(RECIPE.read_text())["model"]["init_args"])
    return init_args


def build_pair(lib: SimpleNamespace, num_classes: int, **our_overrides):
    """The official network (deterministic weights) and our module with the same tensors."""
    theirs = lib.vgg_spa.model(pretrained=False, num_classes=num_classes, args=official_args())
    deterministic_weights(theirs)
    init_args = {**recipe_init_args(), "pretrained": False, "num_classes": num_classes, "channels_last": False,
                 **our_overrides}
    module = get_model("spa", **init_args)
    tensors = copy_in_order(aligned(theirs), module.model)
    return theirs, module, tensors


def diff(a: torch.Tensor | float, b: torch.Tensor | float, *raw: torch.Tensor) -> float:
    """Largest absolute difference; infinite when it or any raw tensor is not finite."""
    if any(not bool(torch.isfinite(torch.as_tensor(r)).all()) for r in raw):
        return math.inf
    value = (torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)).abs().max().item()
    return value if math.isfinite(value) else math.inf


def normalized(maps: torch.Tensor) -> torch.Tensor:
    return minmax_normalize(maps.double())


def official_hsc(theirs: nn.Module, args: SimpleNamespace, feature: torch.Tensor) -> torch.Tensor:
    """``VGG.hsc`` of one block combined as ``val_spa.py`` L287-291 (``--scg_com``)."""
    first, high = theirs.hsc(feature, fo_th=args.scg_fosc_th, so_th=args.scg_sosc_th, order=args.scg_order)
    combined = torch.max(first, args.scg_so_weight * high)
    return combined / (torch.sum(combined, dim=1, keepdim=True) + 1e-10)


def official_maps(lib, theirs, args, class_maps, sc_fo, sc_so, probabilities, labels, image_file):
    """Per image (the official batch size 1): CAM and SCG maps of the GT class and of the top-1 class."""
    cam_gt, scg_gt, cam_top1, scg_top1 = [], [], [], []
    for b in range(len(labels)):
        sc = [torch.max(fo[b:b + 1], args.scg_so_weight * so[b:b + 1]) for fo, so in zip(sc_fo, sc_so)
              if fo is not None and so is not None]  # val_spa.py L287-291
        sc = [s / (torch.sum(s, dim=1, keepdim=True) + 1e-10) for s in sc]
        loc_map = F.relu(class_maps[b:b + 1])  # val_spa.py L255
        label = labels[b:b + 1]
        _, top_maps, _, gt_known_maps = lib.localization.get_topk_boxes_hier(
            probabilities[b], loc_map, image_file, label, topk=(1,), threshold=0.1, mode="union")
        _, gt_scg = lib.localization.get_topk_boxes_hier_scg(
            probabilities[b], gt_known_maps, sc[-1] + sc[-2], image_file, topk=(1,), threshold=0.1, mode="union",
            gt_labels=label, fg_th=args.scg_fg_th, bg_th=args.scg_bg_th, sc_maps_fo=None)
        _, top_scg = lib.localization.get_topk_boxes_hier_scg(
            probabilities[b], top_maps, sc[-1] + sc[-2], image_file, topk=(1,), threshold=0.1, mode="union",
            fg_th=args.scg_fg_th, bg_th=args.scg_bg_th, sc_maps_fo=None)
        cam_gt.append(gt_known_maps[0])
        scg_gt.append(gt_scg[0])
        cam_top1.append(top_maps[0])
        scg_top1.append(top_scg[0])
    stack = lambda maps: torch.from_numpy(np.stack(maps).astype(np.float64))
    return stack(cam_gt), stack(scg_gt), stack(cam_top1), stack(scg_top1)


def compare_outputs(lib, args_cli) -> list[tuple[str, float, str, float | None]]:
    """Rows (quantity, difference, shape, tolerance) of the eval-mode forward and maps."""
    args = official_args()
    theirs, module, tensors = build_pair(lib, args_cli.num_classes)
    theirs.eval()
    ours = module.model.eval()
    images = torch.rand(args_cli.batch_size, 3, args_cli.image_size, args_cli.image_size,
                        generator=torch.Generator().manual_seed(1))
    labels = torch.arange(args_cli.batch_size) % args_cli.num_classes
    with torch.no_grad():
        class_maps, sc_fo, sc_so = theirs(official_input(images), scg_flag=True)
        their_logits = torch.mean(torch.mean(class_maps, dim=2), dim=2)  # val_spa.py L241
        out = ours(images)
        located = ours.localize(images, labels)
        top1 = ours.localize(images)
        ours.use_scg = False
        cam = ours.localize(images, labels)
        ours.use_scg = True
        our_hsc = [high_order_self_correlation(block, module.hparams.scg_first_order_threshold,
                                               module.hparams.scg_second_order_threshold,
                                               module.hparams.scg_second_order_weight, module.hparams.scg_order,
                                               module.hparams.scg_mode) for block in out.blocks]
        their_hsc = [official_hsc(theirs, args, feature) for feature in (theirs.feat4, theirs.feat5)]
        h, w = class_maps.shape[-2:]
        object_seeds, background_seeds = ours.generator.seeds(gather_class_maps(out.class_maps, labels))
        theirs64 = copy.deepcopy(theirs).double()
        class_maps64, sc_fo64, sc_so64 = theirs64(official_input(images).double(), scg_flag=True)
        with tempfile.TemporaryDirectory() as folder:
            image_file = str(Path(folder) / "image.png")
            cv2.imwrite(image_file, np.zeros((h, w, 3), np.uint8))
            with contextlib.redirect_stdout(io.StringIO()):
                cam_gt, scg_gt, _, scg_top1 = official_maps(
                    lib, theirs, args, class_maps, sc_fo, sc_so, F.softmax(their_logits, dim=1), labels, image_file)
                scg_gt64 = official_maps(lib, theirs64, args, class_maps64, sc_fo64, sc_so64,
                                         F.softmax(their_logits, dim=1), labels, image_file)[1]
    # the official seeds: localization.py L152-160 on the normalized ReLU CAM resized to the grid
    their_cams = np.stack([cv2.resize(m.numpy().astype(np.float32), dsize=(w, h)).reshape(-1) for m in cam_gt])
    seeds = {"object": (torch.from_numpy(their_cams >= args.scg_fg_th), object_seeds),
             "background": (torch.from_numpy(their_cams <= args.scg_bg_th), background_seeds)}
    grid = f"{h}x{w}"
    same_top1 = bool((their_logits.argmax(1) == top1.classes).all())
    rows = [
        (f"tensors copied: {tensors} (official conv5_add left out)", 0.0, "", TOLERANCE),
        ("logits", diff(their_logits, out.logits, their_logits, out.logits), str(tuple(out.logits.shape)), TOLERANCE),
        ("class maps A (raw)", diff(class_maps, out.class_maps, class_maps, out.class_maps), grid, TOLERANCE),
        (f"SCG block 1: official feat4 vs our {ours.scg_taps[0]}",
         diff(theirs.feat4, out.blocks[0], theirs.feat4, out.blocks[0]), grid, TOLERANCE),
        (f"SCG block 2: official feat5 vs our {ours.scg_taps[1]}",
         diff(theirs.feat5, out.blocks[1], theirs.feat5, out.blocks[1]), grid, TOLERANCE),
    ]
    n = h * w
    for index, (theirs_hsc, ours_hsc) in enumerate(zip(their_hsc, our_hsc), 1):
        rows.append((f"HSC block {index} (combined, column-stochastic)", diff(theirs_hsc, ours_hsc, theirs_hsc, ours_hsc),
                     f"{n}x{n}", TOLERANCE))
    for kind, (their_seeds, our_seeds) in seeds.items():
        rows.append((f"SCG {kind} seeds, GT class (positions differing)", float((their_seeds != our_seeds).sum()),
                     f"{int(our_seeds.sum())} of {our_seeds.numel()}", 0.0))
    rows += [
        ("SCG map, GT class (normalized)", diff(normalized(scg_gt), normalized(located.maps), scg_gt, located.maps),
         grid, SCG_TOLERANCE),
        ("info: rounding floor, official SCG map float32 vs float64", diff(normalized(scg_gt), normalized(scg_gt64)),
         grid, None),
        ("info: our SCG map vs official float64", diff(normalized(scg_gt64), normalized(located.maps)), grid, None),
        (f"SCG map, top-1 class (normalized; same classes: {same_top1})",
         diff(normalized(scg_top1), normalized(top1.maps), scg_top1, top1.maps) if same_top1 else math.inf,
         grid, SCG_TOLERANCE),
        ("CAM map, GT class, scg off (normalized)", diff(normalized(cam_gt), normalized(cam.maps), cam_gt, cam.maps),
         grid, TOLERANCE),
        ("info: CAM map with ReLU applied to ours before the min-max (official val_spa.py L255)",
         diff(normalized(cam_gt), normalized(F.relu(cam.maps))), grid, None),
    ]
    return rows


def _our_losses(module, images, labels):
    batch = WSOLBatch(image=images, label=labels, boxes=torch.full((len(labels), 0, 4), -1),
                      num_boxes=torch.zeros(len(labels), dtype=torch.long), image_id=[str(i) for i in range(len(labels))],
                      orig_size=torch.tensor([list(images.shape[-2:])] * len(labels)))
    return module.training_losses(batch)


def compare_losses(lib, args_cli) -> list[tuple[str, float, str, float | None]]:
    """Rows of the training losses (train mode) before and after the RAM warm-up, and of their gradients."""
    images = torch.rand(args_cli.batch_size, 3, args_cli.image_size, args_cli.image_size,
                        generator=torch.Generator().manual_seed(2))
    labels = (torch.arange(args_cli.batch_size) + 1) % args_cli.num_classes
    rows = []
    for phase, ram_start in (("epoch 0 < ram_start 20 (RAM off)", OFFICIAL_ARGS["ram_start"]), ("RAM on (ram_start 0)", 0)):
        theirs, module, _ = build_pair(lib, args_cli.num_classes, ram_start_epoch=ram_start)
        theirs.args = official_args(ram_start=ram_start)
        theirs.train()
        module.model.train()
        class_maps, _, _ = theirs(official_input(images))  # train_cam_spa.py L212
        their_total, their_ra = theirs.get_loss(class_maps, labels, epoch=0, ram_start=ram_start)  # L214
        theirs.args = official_args(ram=False)
        their_ce, _ = theirs.get_loss(class_maps, labels, epoch=0, ram_start=ram_start)
        their_ram = theirs.args.ra_loss_weight * their_ra
        losses = _our_losses(module, images, labels)
        our_total = sum(losses.values())
        their_total.backward()
        our_total.backward()
        their_grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in aligned(theirs).parameters()]
        our_grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in module.model.parameters()]
        scale = max(g.abs().max().item() for g in their_grads)
        gradient = max(diff(a, b, a, b) for a, b in zip(their_grads, our_grads)) / max(scale, 1e-30)
        shown = f"{their_ce.item():.4f} / {their_ram.item():.4f}"
        rows += [
            (f"loss CE, {phase}", diff(their_ce.detach(), losses["ce"].detach(), their_ce.detach()), shown, TOLERANCE),
            (f"loss lambda*L_RA, {phase}", diff(their_ram.detach(), losses["ram"].detach(), their_ram.detach()), shown,
             TOLERANCE),
            (f"loss total, {phase}", diff(their_total.detach(), our_total.detach(), their_total.detach()), shown, TOLERANCE),
            (f"gradients of the total, {phase} (relative to max {scale:.2e})", gradient, "all params", TOLERANCE),
        ]
    return rows


def compare_lr_groups(lib, args_cli) -> tuple[list[tuple[str, float, str, float | None]], list[str]]:
    """Rows (per lr multiplier) of the official optimizer's groups vs ours, and the mismatched names."""
    _, module, _ = build_pair(lib, args_cli.num_classes)
    with tempfile.TemporaryDirectory() as folder:
        torch.save({}, Path(folder) / "vgg16.pth")  # model(pretrained=True) loads it instead of downloading
        args = official_args(num_classes=args_cli.num_classes, device=torch.device("cpu"), gpus=None,
                             resume="False", pretrained_model_dir=folder, pretrained_model="vgg16.pth")
        with contextlib.redirect_stdout(io.StringIO()):
            wrapped, optimizer = lib.train.get_model(args)
    network = getattr(wrapped, "module", wrapped)
    names = {id(p): n for n, p in network.named_parameters()}
    # official name -> our name by state-dict position (the rule copy_in_order uses)
    to_ours = dict(zip(aligned(network).state_dict().keys(), module.model.state_dict().keys()))
    theirs: dict[str, float] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            theirs[names[id(p)]] = group["lr"] / args.lr
    configured = module.configure_optimizers()
    our_optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    our_names = {id(p): n for n, p in module.model.named_parameters()}
    ours: dict[str, float] = {}
    for group in our_optimizer.param_groups:
        for p in group["params"]:
            ours[our_names[id(p)]] = group["lr"] / module.hparams.lr
    unused = sorted((n for n in theirs if n.startswith("conv5_add")), reverse=True)
    mapped = {to_ours[n]: m for n, m in theirs.items() if n not in unused}
    rows, mismatched = [], []
    for multiplier in sorted(set(mapped.values()) | set(ours.values())):
        official_set = {n for n, m in mapped.items() if m == multiplier}
        our_set = {n for n, m in ours.items() if m == multiplier}
        wrong = sorted(official_set ^ our_set)
        mismatched += [f"x{multiplier:g}: {n} ({'official only' if n in official_set else 'ours only'})" for n in wrong]
        rows.append((f"lr x{multiplier:g}: official {len(official_set)} params, ours {len(our_set)}",
                     0.0 if not wrong else math.inf, f"{len(wrong)} mismatched", 0.0))
    listed = ", ".join(f"{n} x{theirs[n]:g}" for n in unused)
    rows.append((f"official-only params, never used in forward: {listed}", 0.0, "not in ours", 0.0))
    sgd = {k: our_optimizer.defaults[k] for k in OFFICIAL_SGD}
    same = f"official {tuple(OFFICIAL_SGD.values())}, ours {tuple(sgd.values())}"
    rows.append((f"SGD momentum / weight decay / nesterov: {same}", 0.0 if sgd == OFFICIAL_SGD else math.inf, "", 0.0))
    official_sgd = {k: optimizer.defaults[k] for k in OFFICIAL_SGD}
    if official_sgd != OFFICIAL_SGD:  # the constant above restates train_cam_spa.py L118-122
        rows.append((f"official SGD settings read back {official_sgd}", math.inf, "", 0.0))
    return rows, mismatched


def compare_settings() -> list[tuple[str, float, str, float | None]]:
    init_args = recipe_init_args()
    wrong = [f"{ours}={init_args.get(ours)!r} vs {theirs}={OFFICIAL_ARGS[theirs]!r}"
             for ours, theirs in SETTING_KEYS.items() if init_args.get(ours) != OFFICIAL_ARGS[theirs]]
    mode = init_args.get("scg_mode") == "combined" and OFFICIAL_ARGS["scg_com"]
    units = init_args.get("backbone_units") is None  # default VGG16 taps pool4, conv5 = --scg_blocks=4,5
    if not mode:
        wrong.append(f"scg_mode={init_args.get('scg_mode')!r} vs --scg_com")
    if not units:
        wrong.append(f"backbone_units={init_args.get('backbone_units')!r} vs --scg_blocks=4,5")
    return [(f"settings: {len(SETTING_KEYS) + 2} recipe keys vs the CUB scripts"
             + (f" ({'; '.join(wrong)})" if wrong else ""), math.inf if wrong else 0.0, RECIPE.name, 0.0)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of Panxjia/SPA_CVPR2021")
    parser.add_argument("--num-classes", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--official-commit", default=None,
                        help="the checkout's commit for the header (default: git rev-parse there)")
    args = parser.parse_args()
    if not (args.official / "models" / "vgg" / "vgg_spa.py").is_file():
        print(f"error: {args.official} is not a checkout of Panxjia/SPA_CVPR2021 (no models/vgg/vgg_spa.py there)",
              file=sys.stderr)
        return 2
    torch.manual_seed(0)
    lib = load_official(args.official.resolve())
    commit = args.official_commit or subprocess.run(["git", "-C", str(args.official), "rev-parse", "--short", "HEAD"],
                            check=False, capture_output=True, text=True).stdout.strip()
    print(f"SPA_CVPR2021 at {args.official} (commit {commit or 'unknown'}); vgg16, image {args.image_size} px, "
          f"batch {args.batch_size}, {args.num_classes} classes, float32, CPU; InceptionV3: no official code")
    rows = compare_settings() + compare_outputs(lib, args) + compare_losses(lib, args)
    lr_rows, mismatched = compare_lr_groups(lib, args)
    rows += lr_rows
    print("| quantity | shape / values | max abs diff | tolerance | ok |")
    print("|---|---|---|---|---|")
    failed = 0
    for quantity, difference, shape, tolerance in rows:
        if tolerance is None:
            print(f"| {quantity} | {shape} | {difference:.1e} | info | - |")
            continue
        ok = math.isfinite(difference) and difference <= tolerance  # a NaN fails
        failed += not ok
        shown = "-" if tolerance == 0.0 and ok and difference == 0.0 and "seeds" not in quantity else (
            f"{difference:g}" if tolerance == 0.0 else f"{difference:.1e}")
        print(f"| {quantity} | {shape} | {shown} | {tolerance:g} | {'yes' if ok else '**NO**'} |")
    for name in mismatched:
        print(f"lr group mismatch: {name}")
    checked = sum(row[3] is not None for row in rows)
    print(f"{failed} of {checked} checked rows exceed their tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
