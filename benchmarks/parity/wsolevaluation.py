"""Parity with wsolevaluation (Choe et al., CVPR 2020): its networks loaded next to ours on the same weights.

The official repository is not part of this project: pass a checkout of clovaai/wsolevaluation
(the figures in BENCHMARKS.md are from @96f4b88) and this script imports its ``wsol`` package from
there. For each method and backbone it builds the official network and ours at random init, copies
the official tensors into ours in state-dict order (every shape is checked, a 1x1 convolution
may feed a linear layer; a mismatch stops the script and names both keys), and prints the largest absolute difference of the logits and of the
class maps of the labelled class (``return_cam=True`` there, ``localize`` here), min-max normalized
as both evaluations do before thresholding (wsolevaluation's CAM averages over channels where ours
sums, a constant factor), in eval mode. Then (:func:`training_parity`, skip with ``--no-training``) the
training-mode loss and gradients of CAM, ACoL and SPG through ``main.Trainer._wsol_training`` and the
learning-rate groups of ``main.Trainer._set_optimizer`` against our recipe of the cell, and
(:func:`box_curves`, ``--box-curves 0`` skips it) the hit counts of the official ``BoxEvaluator``
against our ``MaxBoxAccV2`` at every threshold.
Tolerance: 1e-4 absolute on float32 outputs of order 1-10 (the sums of a deep network in a different
operation order), losses 1e-3, gradients 1e-4 relative to the largest official gradient; learning-rate
groups and hit counts exactly. The exit status is 1 when any row exceeds its tolerance.

    git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation   # on a machine with network
    PYTHONPATH=src python benchmarks/parity/wsolevaluation.py --official /tmp/wsolevaluation
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from common import copy_in_order, deterministic_weights
from torch import nn

from wsol_lightning.cam import minmax_normalize, resize_cam
from wsol_lightning.data import WSOLBatch
from wsol_lightning.metrics import MaxBoxAccV2
from wsol_lightning.models import get_model

#: Our method -> (wsolevaluation architecture_type, our init args that are wsolevaluation's settings).
METHODS: dict[str, tuple[str, dict]] = {
    "cam": ("cam", {}),
    "has": ("cam", {}),
    "cutmix": ("cam", {}),
    "adl": ("adl", {"apply_prob": 0.75, "foreground_threshold": 0.9}),
    "acol": ("acol", {"foreground_threshold": 0.6}),
    "spg": ("spg", {}),
}
#: wsolevaluation's keyword arguments (main.py ``_set_model``) for the settings above.
OFFICIAL_KWARGS = {"dataset_name": "CUB", "adl_drop_rate": 0.75, "adl_drop_threshold": 0.9, "acol_drop_threshold": 0.6}
TOLERANCE = 1e-4
#: wsolevaluation's input normalization (data_loaders.py L30-31), independent of our backbone constants.
OFFICIAL_MEAN, OFFICIAL_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def official_input(images: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` images normalized as wsolevaluation's loaders do (ours normalize inside the network)."""
    return (images - torch.tensor(OFFICIAL_MEAN).view(1, 3, 1, 1)) / torch.tensor(OFFICIAL_STD).view(1, 3, 1, 1)


def official_network(official: Path, architecture_type: str, backbone: str, num_classes: int,
                     large_feature_map: bool) -> torch.nn.Module:
    """The official network of ``backbone`` and ``architecture_type`` at its own random init."""
    if str(official) not in sys.path:
        sys.path.insert(0, str(official))
    import wsol  # noqa: PLC0415  (the user's checkout)

    return wsol.__dict__[backbone](architecture_type=architecture_type, pretrained=False, num_classes=num_classes,
                                   large_feature_map=large_feature_map, **OFFICIAL_KWARGS)


def golden_images(image_size: int) -> torch.Tensor:
    """The two ``[0, 1]`` images of the golden fixture."""
    return torch.rand(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))


def normalized_maps(maps: torch.Tensor) -> torch.Tensor:
    return minmax_normalize(maps.float())


def write_golden(official: Path, output: Path, args: argparse.Namespace) -> None:
    """Official logits and normalized maps on :func:`deterministic_weights`, one entry per method/backbone."""
    images = golden_images(args.image_size)
    labels = torch.arange(len(images)) % args.num_classes
    normalized = official_input(images)
    arrays: dict[str, np.ndarray] = {"images": images.numpy(), "labels": labels.numpy()}
    for method in args.methods:
        architecture_type = METHODS[method][0]
        for backbone in args.backbones:
            network = official_network(official, architecture_type, backbone, args.num_classes,
                                       args.large_feature_map).eval()
            deterministic_weights(network)
            with torch.no_grad():
                arrays[f"{method}/{backbone}/logits"] = network(normalized)["logits"].numpy()
                arrays[f"{method}/{backbone}/maps"] = normalized_maps(network(normalized, labels, return_cam=True)).numpy()
    commit = args.official_commit or subprocess.run(
        ["git", "-C", str(official), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    arrays["source"] = np.array(
        f"clovaai/wsolevaluation @ {commit or 'unknown commit'}; "
        f"python benchmarks/parity/wsolevaluation.py --official <checkout> --methods {' '.join(args.methods)} "
        f"--backbones {' '.join(args.backbones)} --num-classes {args.num_classes} --image-size {args.image_size}"
        f"{' --large-feature-map' if args.large_feature_map else ''} --write-golden {output}"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, **arrays)
    print(f"wrote {output} ({len(arrays) - 3} arrays)")


def compare(official: Path, method: str, backbone: str, args: argparse.Namespace) -> dict:
    architecture_type, init_args = METHODS[method]
    torch.manual_seed(0)
    theirs = official_network(official, architecture_type, backbone, args.num_classes, args.large_feature_map).eval()
    ours = get_model(method, backbone=backbone, num_classes=args.num_classes, pretrained=False,
                     large_feature_map=args.large_feature_map, channels_last=False, **init_args).model.eval()
    tensors = copy_in_order(theirs, ours)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=generator)
    labels = torch.arange(args.batch_size) % args.num_classes
    normalized = official_input(images)
    with torch.no_grad():
        their_logits = theirs(normalized)["logits"]
        their_maps = theirs(normalized, labels, return_cam=True)
        out = ours.localize(images, labels)
    if their_maps.shape != out.maps.shape:
        raise SystemExit(f"{method}/{backbone}: map shapes differ: official {tuple(their_maps.shape)}, "
                         f"ours {tuple(out.maps.shape)}")
    flat = their_maps.flatten(1)
    if bool((flat.amax(1) == flat.amin(1)).any()):  # normalized to zeros on both sides: nothing compared
        raise SystemExit(f"{method}/{backbone}: the official map of some image is constant, so the normalized "
                         "maps would match whatever ours are; use other --image-size / --num-classes")
    return {
        "method": method, "backbone": backbone, "tensors": tensors, "map": "x".join(map(str, out.maps.shape[-2:])),
        "logits": (their_logits - out.logits).abs().max().item(),
        "maps": (normalized_maps(their_maps) - normalized_maps(out.maps)).abs().max().item(),
        "scale": (out.maps.abs().amax() / their_maps.abs().amax()).item(),
    }


def box_curves(official: Path, count: int, interval: float) -> list[dict]:
    """The official ``BoxEvaluator`` against our ``MaxBoxAccV2`` on the same raw maps and GT boxes.

    ``count`` smooth maps (random 14x14 maps, like CAMs) with 1-2 random boxes in the 224 px frame. The
    official side runs its own code from the raw map on: ``cv2.resize`` bicubic and ``normalize_scoremap``
    (inference.py L86-89), then ``BoxEvaluator.accumulate`` (made with ``object.__new__``: its
    ``__init__`` reads metadata files, so the attributes it sets are given here; ``np.float`` /
    ``np.int``, gone from NumPy, are aliased while it runs). Ours: ``MaxBoxAccV2.update`` on the raw maps
    resized by ``resize_cam``. Compared: the hit counts at every (IoU, CAM) threshold pair, multi-contour
    (V2) and largest contour (v1), and the MaxBoxAcc of each IoU threshold. ``munch``, which its config
    modules import, is stubbed when it is not installed.
    """
    if str(official) not in sys.path:
        sys.path.insert(0, str(official))
    try:
        import munch  # noqa: F401, PLC0415
    except ImportError:  # config.py / data_loaders.py import it for their Munch configs, unused here
        sys.modules["munch"] = types.SimpleNamespace(Munch=dict)
    aliases = {name: getattr(np, name, None) for name in ("float", "int")}
    np.float, np.int = float, int  # the 2020 code's dtypes
    try:
        import evaluation  # noqa: PLC0415  (the user's checkout)
        import inference  # noqa: PLC0415
    finally:
        for name, value in aliases.items():
            if value is None:
                delattr(np, name)
    rng = np.random.default_rng(20)
    raw = rng.normal(size=(count, 14, 14))
    boxes = []
    for _ in range(count):
        k = int(rng.integers(1, 3))
        x, y = np.sort(rng.integers(0, 224, size=(k, 2)), axis=1), np.sort(rng.integers(0, 224, size=(k, 2)), axis=1)
        boxes.append(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1).astype(np.int64))
    deltas = [30, 50, 70]
    rows = []
    for multi_contour in (True, False):
        theirs = object.__new__(evaluation.BoxEvaluator)
        theirs.cam_threshold_list = list(np.arange(0, 1, interval))
        theirs.iou_threshold_list, theirs.multi_contour_eval, theirs.cnt = deltas, multi_contour, 0
        theirs.num_correct = {delta: np.zeros(len(theirs.cam_threshold_list)) for delta in deltas}
        theirs.gt_bboxes = {str(i): b.tolist() for i, b in enumerate(boxes)}
        np.float, np.int = float, int
        try:
            for i, cam in enumerate(raw):
                resized = cv2.resize(cam, (224, 224), interpolation=cv2.INTER_CUBIC)
                theirs.accumulate(inference.normalize_scoremap(resized), str(i))
            their_max = theirs.compute()
        finally:
            for name, value in aliases.items():
                if value is None:
                    delattr(np, name)
        ours = MaxBoxAccV2(iou_thresholds=deltas, cam_curve_interval=interval, multi_contour=multi_contour)
        ours.update(torch.from_numpy(resize_cam(raw, (224, 224))), [torch.from_numpy(b) for b in boxes])
        their_hits = np.stack([theirs.num_correct[d] for d in deltas]).astype(np.int64)
        our_hits = ours.hits.numpy()
        same_grid = their_hits.shape == our_hits.shape
        rows.append({
            "contours": "all (V2)" if multi_contour else "largest (v1)", "maps": count, "interval": interval,
            "thresholds": f"{their_hits.shape[1]} / {our_hits.shape[1]}",
            "hits": int(np.abs(their_hits - our_hits).max()) if same_grid else math.inf,
            "maxboxacc": " / ".join(f"{t:.1f} vs {o:.1f}" for t, o in zip(their_max, our_hits.max(1) * 100.0 / count)),
        })
    return rows


#: The methods whose training loss is deterministic given the weights and the batch (ADL draws its drop
#: masks, HaS and CutMix their erasing / mixing: their loss is CAM's cross-entropy on that input).
LOSS_METHODS = ("cam", "acol", "spg")
#: Cells whose CUB recipe follows the paper's own code, not wsolevaluation's (ACoL-VGG16: official ACoL).
PAPER_RECIPES = {("acol", "vgg16")}
#: wsolevaluation's SPG thresholds (config.py L213-224 defaults: (h, l) for B2, B1-from-B2, C).
OFFICIAL_SPG_THRESHOLDS = ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))


def _official_main(official: Path):
    """wsolevaluation's ``main`` module (its ``Trainer``); ``munch`` is stubbed when not installed."""
    if str(official) not in sys.path:
        sys.path.insert(0, str(official))
    try:
        import munch  # noqa: F401, PLC0415
    except ImportError:  # config.py / data_loaders.py import it for their Munch configs, unused here
        sys.modules["munch"] = types.SimpleNamespace(Munch=dict)
    import main as official_main  # noqa: PLC0415  (the user's checkout)

    return official_main


def recipe_init_args(method: str, backbone: str) -> dict:
    """Our ``experiments/paper/<method>_<backbone>_cub.yaml`` init args, random init, NCHW."""
    recipe = Path(__file__).resolve().parents[2] / "experiments" / "paper" / f"{method}_{backbone}_cub.yaml"
    init_args = dict(yaml.safe_load(recipe.read_text())["model"]["init_args"])
    init_args.update(pretrained=False, channels_last=False)
    return init_args


def training_parity(official: Path, method: str, backbone: str, args: argparse.Namespace) -> dict:
    """Training-mode loss and gradients (``LOSS_METHODS``) and the learning-rate groups of ``main.Trainer``.

    Both networks get the same weights (``deterministic_weights`` on the official one, copied by position),
    the same dropout masks (the RNG seeded before each side's forward) and, for the loss, the same batch of ``args.batch_size`` 224 px images (SPG's official loss upsamples
    to 224): official ``Trainer._wsol_training`` (CE; ``wsol.method.acol / spg.get_loss`` with config.py's
    SPG thresholds) against our ``training_losses`` summed. Learning-rate groups: ``Trainer._set_optimizer``
    (name patterns, main.py L130-162) at lr 1 and ``lr_classifier_ratio`` 10 against our
    ``configure_optimizers`` with the cell's CUB recipe (its ``head_lr_prefixes``, multipliers, weight
    decay), parameter by parameter in state-dict order.
    """
    official_main = _official_main(official)
    architecture_type, init_args = METHODS[method]
    recipe = recipe_init_args(method, backbone)
    large = bool(recipe.get("large_feature_map", False))
    theirs = official_network(official, architecture_type, backbone, args.num_classes, large)
    ours_module = get_model(method, num_classes=args.num_classes, **{**recipe, **init_args})
    deterministic_weights(theirs)
    copy_in_order(theirs, ours_module.model)
    row = {"method": method, "backbone": backbone}
    if method in LOSS_METHODS:
        generator = torch.Generator().manual_seed(2)
        images = torch.rand(args.batch_size, 3, 224, 224, generator=generator)
        labels = torch.arange(args.batch_size) % args.num_classes
        trainer = object.__new__(official_main.Trainer)
        trainer.model = theirs.train()
        trainer.args = types.SimpleNamespace(wsol_method=method, spg_thresholds=OFFICIAL_SPG_THRESHOLDS)
        trainer.cross_entropy_loss = nn.CrossEntropyLoss()
        torch.manual_seed(3)  # the same dropout masks on both sides (InceptionV3's neck), drawn in the same order
        _, their_loss = trainer._wsol_training(official_input(images), labels)
        their_loss.backward()
        ours_module.model.train()
        batch = WSOLBatch(image=images, label=labels, boxes=torch.full((len(labels), 1, 4), -1),
                          num_boxes=torch.zeros(len(labels), dtype=torch.long),
                          image_id=[str(i) for i in range(len(labels))], orig_size=torch.tensor([[224, 224]] * len(labels)))
        torch.manual_seed(3)
        our_loss = sum(ours_module.training_losses(batch).values())
        our_loss.backward()
        def gradient(parameter: torch.Tensor, shape: torch.Size) -> torch.Tensor:
            """The gradient (zeros where none flowed) in the official shape (a 1x1 conv read as a linear layer)."""
            grad = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
            return grad.reshape(shape)

        pairs = list(zip(theirs.parameters(), ours_module.model.parameters()))
        largest = max(t.grad.abs().max().item() for t, _ in pairs if t.grad is not None)
        row["loss"] = f"{their_loss.item():.5g} / {our_loss.item():.5g}"
        row["loss_diff"] = abs(their_loss.item() - our_loss.item())
        row["grad_diff"] = max((gradient(t, t.shape) - gradient(o, t.shape)).abs().max().item()
                               for t, o in pairs) / max(largest, 1e-12)
    trainer = object.__new__(official_main.Trainer)
    trainer.model = theirs
    trainer.args = types.SimpleNamespace(architecture=backbone, lr=1.0, lr_classifier_ratio=10.0, momentum=0.9,
                                         weight_decay=5e-4)
    their_groups = {id(p): g["lr"] for g in trainer._set_optimizer().param_groups for p in g["params"]}
    configured = ours_module.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    base = ours_module.hparams.lr
    our_groups = {id(p): g["lr"] / base for g in optimizer.param_groups for p in g["params"]}
    names = list(zip(theirs.named_parameters(), ours_module.model.named_parameters()))
    moved = [f"{their_name}: x{their_groups[id(t)]:g} / ours x{our_groups.get(id(o), float('nan')):g}"
             for (their_name, t), (_, o) in names if abs(their_groups[id(t)] - our_groups.get(id(o), -1)) > 1e-9]
    counts = {}
    for value in their_groups.values():
        counts[value] = counts.get(value, 0) + 1
    row["lr"] = ", ".join(f"x{k:g}: {v}" for k, v in sorted(counts.items()))
    row["lr_moved"] = moved
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of clovaai/wsolevaluation")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50", "inception_v3"])
    parser.add_argument("--num-classes", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--large-feature-map", action="store_true")
    parser.add_argument("--no-training", dest="training", action="store_false",
                        help="skip the training-mode losses and learning-rate groups")
    parser.add_argument("--box-curves", type=int, default=100,
                        help="maps for the BoxAcc-curve comparison against the official BoxEvaluator (0: skip)")
    parser.add_argument("--box-curve-interval", type=float, default=0.01,
                        help="CAM threshold step of that comparison (0.001 takes 10x longer on the official side)")
    parser.add_argument("--write-golden", type=Path, default=None,
                        help="instead of comparing, write the official outputs on deterministic weights to this "
                             ".npz (tests/data/parity/wsolevaluation.npz; tests/models/test_parity_golden.py reads it)")
    parser.add_argument("--official-commit", default=None,
                        help="the checkout's commit for the fixture's source line (default: git rev-parse HEAD there)")
    args = parser.parse_args()
    if not (args.official / "wsol" / "__init__.py").is_file():
        print(f"error: {args.official} is not a checkout of clovaai/wsolevaluation (no wsol/__init__.py there)",
              file=sys.stderr)
        return 2
    if args.write_golden:
        write_golden(args.official, args.write_golden, args)
        return 0
    print(f"wsolevaluation at {args.official}; image {args.image_size} px, batch {args.batch_size}, "
          f"{args.num_classes} classes, large_feature_map={args.large_feature_map}, eval mode, float32")
    print("| method | backbone | tensors copied | map | max abs diff logits | max abs diff normalized maps | "
          "raw map scale ours / official |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for method in args.methods:
        for backbone in args.backbones:
            row = compare(args.official, method, backbone, args)
            # a NaN difference (a non-finite output) must fail, not vanish in max()
            worst = max(worst, *(d if math.isfinite(d) else math.inf for d in (row["logits"], row["maps"])))
            print(f"| {method} | {backbone} | {row['tensors']} | {row['map']} | {row['logits']:.1e} | "
                  f"{row['maps']:.1e} | {row['scale']:.4g} |")
    print(f"largest difference {worst:.1e} (tolerance {TOLERANCE:g})")
    training_failed = 0
    if args.training:
        print("\nTraining: loss and gradients on one batch (train mode, 224 px), learning-rate groups of main.py's "
              "Trainer against our CUB recipe of the cell")
        print("| method | backbone | loss official / ours | max abs diff | max gradient diff (relative) | "
              "official lr groups (params) | params whose multiplier differs |")
        print("|---|---|---|---|---|---|---|")
        for method in args.methods:
            for backbone in args.backbones:
                if (method, backbone) in PAPER_RECIPES:
                    continue
                row = training_parity(args.official, method, backbone, args)
                loss_ok = row.get("loss_diff", 0.0) <= TOLERANCE * 10 and row.get("grad_diff", 0.0) <= TOLERANCE
                training_failed += (not loss_ok) or bool(row["lr_moved"])
                loss = (f"{row['loss']} | {row['loss_diff']:.1e} | {row['grad_diff']:.1e}" if "loss" in row
                        else "- | - | -")
                print(f"| {method} | {backbone} | {loss} | {row['lr']} | {len(row['lr_moved'])} |")
                for line in row["lr_moved"][:5]:
                    print(f"  - {line}")
        print(f"{training_failed} training rows differ (loss tolerance {TOLERANCE * 10:g}, gradients "
              f"{TOLERANCE:g} relative, lr groups exact)")
    curves_differ = 0
    if args.box_curves:
        print(f"\nBoxAcc curves: the official BoxEvaluator vs our MaxBoxAccV2, IoU 30/50/70, on {args.box_curves} "
              f"smooth 224x224 maps")
        print("| contours | maps | CAM threshold step | thresholds official / ours | max abs diff of hit counts | "
              "MaxBoxAcc per IoU official vs ours |")
        print("|---|---|---|---|---|---|")
        for row in box_curves(args.official, args.box_curves, args.box_curve_interval):
            curves_differ += row["hits"] != 0
            print(f"| {row['contours']} | {row['maps']} | {row['interval']} | {row['thresholds']} | {row['hits']} | "
                  f"{row['maxboxacc']} |")
        print(f"{curves_differ} of 2 curve sets differ (tolerance: identical counts)")
    return 0 if worst <= TOLERANCE and not curves_differ and not training_failed else 1


if __name__ == "__main__":
    sys.exit(main())
