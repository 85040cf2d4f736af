"""Parity with the official DANet code (Xue et al., ICCV 2019): its networks next to ours on the same weights.

The official repository is not part of this project: pass a checkout of xuehaolan/DANet (the figures in
the report are from @f34b68f) and this script loads its Python 3 compatible files from there at run time
(``models/vgg/vgg_DA.py``, ``models/vgg/vgg_DA_p.py``, ``models/google/inception3_CAM345_cos.py``,
``utils/localization.py``, and the function ``norm_atten_map`` of ``utils/vistools.py`` and ``get_model``
of ``exper/train_DA.py``, both Python 2 files, so only these functions are extracted, their ``print x``
statements read as ``print(x)``). Shims, all in this script: ``utils.vistools`` is a stub module holding the
extracted ``norm_atten_map``; ``torch.Tensor.cuda`` is the identity while the official ``get_loss`` runs
(its cosine loss moves a mask to the GPU); the official network's ``.cuda()`` is the identity inside
``get_model``, whose ``restore`` is never reached (``resume='False'``).

Hierarchy: the official heads hard-code 11 orders and 37 families, so ours uses the shipped ``cub``
hierarchy (11 / 37 / 200); the official per-image ``family_label.txt`` / ``order_label.txt`` lists are
checked against it when the checkout has them. Images are ``[0, 1]`` at 224 px (the official views
hard-code 28x28 / 14x14 / 25x25 / 12x12 maps), normalized with ImageNet statistics for the official
network (its loaders), raw for ours (our backbones normalize inside).

For each variant the official network is filled with :func:`common.deterministic_weights` (non-zero
biases) and copied into ours in state-dict order, then compared:

1. eval mode: the three levels' logits (coarsest first), and the localization map of the official test
   code (``val_hierarchy.py`` L183-188: per level ``mean_k ReLU(A^k)``, child and parent upsampled to
   28x28, bilinear, ``align_corners=True``; ``utils/localization.py`` ``get_topk_boxes_hier`` L66-74:
   sum of the three levels' maps, ``norm_atten_map`` min-max) with each level's top-1 class forced to the
   ancestors of the label, against ``localize(images, labels)`` min-max normalized;
2. training mode: the official ``get_loss`` (per-level CE, cosine loss) against our
   ``training_losses`` on the same labels; our random subset of maps is replaced by the official
   ``random.sample`` draw, mapped from its concatenation order (species, family, order) to ours
   (order, family, species): the same subset;
3. learning-rate groups: the multiplier of every parameter in the official optimizer (``train_DA.py``
   ``get_model``) against ``configure_optimizers()`` with the official recipe (lr 0.001, x10 heads,
   x2 biases, SGD Nesterov momentum 0.9, weight decay 5e-4).

Variants: ``vgg16`` = ``vgg_DA.py`` (the scripts' architecture); ``vgg16_p`` = ``vgg_DA_p.py`` against our
VGG16 with ``large_feature_map``, ``vgg_pooling: acol`` (ACoL's pools) and the units of ``vgg_DA_p``
(``pool3``, the stride-1 pool after conv4, conv5); ``inception_v3`` = ``inception3_CAM345_cos.py`` (K = 4) against our InceptionV3 with the official
surgery put in here (unpadded stride-2 stem pools, no pool after Mixed_5d, stride-2 Mixed_6a: maps
25/25/12 at 224) because ours is wsolevaluation's (28/28/14). A second table (not gated) reports what
differs by design: our recipe's ``large_feature_map: true`` against ``vgg_DA_p.py``, our InceptionV3
as built, and the official fusion of each level's own top-1 class against ours (classes and ancestors).

Tolerance: 1e-4 absolute on float32 logits, normalized maps and losses of order 0.1-10 (the sums of a
deep network in a different operation order); learning-rate groups and hierarchy labels must match
exactly (0 mismatches). The exit status is 1 when a gated row exceeds it (a NaN fails), 2 when
``--official`` is not a checkout.

    git clone https://github.com/xuehaolan/DANet /tmp/DANet   # on a machine with network
    PYTHONPATH=src python benchmarks/parity/danet.py --official /tmp/DANet
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import random
import re
import subprocess
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import copy_in_order, cuda_is_identity, deterministic_weights
from torch import nn

import wsol_lightning.models.danet.loss as danet_loss
from wsol_lightning.cam import minmax_normalize
from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.hierarchy import load_hierarchy
from wsol_lightning.models import get_model

TOLERANCE = 1e-4
#: The official loaders' normalization (utils/loader.py), independent of our backbone constants.
OFFICIAL_MEAN, OFFICIAL_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: The official recipe (scripts/train_DA_cub.sh, exper/train_DA.py get_model) and ours for it.
COS_ALPHA, BASE_LR = 0.01, 0.001
OUR_RECIPE = {"lr": BASE_LR, "head_lr_multiplier": 10.0, "bias_lr_multiplier": 2.0, "weight_decay": 5e-4,
              "momentum": 0.9, "optimizer": "sgd", "cosine_weight": COS_ALPHA, "level_loss_weight": 0.5}
#: variant -> (official model file, official arch name for train_DA.get_model, our backbone, K, gated).
VARIANTS = {
    "vgg16": ("models/vgg/vgg_DA.py", "vgg_DA", "vgg16", 8, True),
    "vgg16_p": ("models/vgg/vgg_DA_p.py", "vgg_DA_p", "vgg16", 8, True),
    "inception_v3": ("models/google/inception3_CAM345_cos.py", "inception3_CAM345_cos", "inception_v3", 4, True),
    "vgg16_large_only": ("models/vgg/vgg_DA_p.py", "vgg_DA_p", "vgg16", 8, False),
}
REQUIRED = ("models/vgg/vgg_DA.py", "models/google/inception3_CAM345_cos.py", "utils/localization.py",
            "utils/vistools.py", "exper/train_DA.py")


# -- loading the official code ----------------------------------------------------------------
def load_file(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def extract_functions(path: Path, names: list[str], namespace: dict) -> dict:
    """Exec the top-level ``def``s ``names`` of a (Python 2) file in ``namespace``; ``print x`` -> ``print(x)``."""
    lines = path.read_text().splitlines()
    for name in names:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
        end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines))
        body = "\n".join(re.sub(r"^(\s*)print\s+(?!\()(.+)$", r"\1print(\2)", line) for line in lines[start:end])
        exec(compile(body, f"{path}:{start + 1}", "exec"), namespace)  # noqa: S102 (the user's checkout)
    return namespace


class Official:
    """The official modules of a checkout, loaded under private names (no ``sys.path`` change)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models = {}
        for file, *_rest in VARIANTS.values():
            if file not in self.models:
                self.models[file] = load_file(root / file, f"danet_official_{Path(file).stem}")
        package = types.ModuleType("danet_official_utils")
        package.__path__ = [str(root / "utils")]
        sys.modules["danet_official_utils"] = package
        vistools = types.ModuleType("danet_official_utils.vistools")  # shim: vistools.py is Python 2
        vistools.norm_atten_map = extract_functions(root / "utils/vistools.py", ["norm_atten_map"], {"np": np})[
            "norm_atten_map"]
        sys.modules["danet_official_utils.vistools"] = vistools
        self.localization = load_file(root / "utils/localization.py", "danet_official_utils.localization")
        self.train_da = root / "exper/train_DA.py"

    def network(self, variant: str, num_classes: int) -> nn.Module:
        file, _, _, num_maps, _ = VARIANTS[variant]
        args = argparse.Namespace(cos_alpha=COS_ALPHA, num_maps=float(num_maps))  # train_DA.py: num_maps float
        return self.models[file].model(pretrained=False, num_classes=num_classes, args=args)

    def optimizer(self, variant: str, network: nn.Module) -> tuple[torch.optim.Optimizer, nn.Module]:
        """``train_DA.py``'s ``get_model`` run on ``network`` (CPU: ``.cuda()`` shimmed to the identity)."""
        arch = VARIANTS[variant][1]
        network.cuda = lambda *a, **k: network  # shim
        factory = types.SimpleNamespace(model=lambda **kwargs: network)

        def no_restore(*args, **kwargs):
            raise SystemExit("train_DA.get_model called restore although resume='False'")

        namespace = extract_functions(self.train_da, ["get_model"],
                                      {"torch": torch, "optim": torch.optim, "restore": no_restore, arch: factory})
        args = argparse.Namespace(arch=arch, num_classes=network.num_classes, lr=BASE_LR, diff_lr="True",
                                  num_gpu=1, resume="False")
        with contextlib.redirect_stdout(io.StringIO()):
            wrapped, optimizer = namespace["get_model"](args)
        return optimizer, wrapped




# -- our networks --------------------------------------------------------------------------------
class _MixedSixAStrideTwo(nn.Module):
    """Our stride-1 Mixed_6a put back to torchvision's stride-2 InceptionB (the official surgery)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.branch3x3, self.branch3x3dbl_1 = block.branch3x3, block.branch3x3dbl_1
        self.branch3x3dbl_2, self.branch3x3dbl_3 = block.branch3x3dbl_2, block.branch3x3dbl_3
        for conv in (self.branch3x3.conv, self.branch3x3dbl_3.conv):
            conv.stride, conv.padding = (2, 2), (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), dbl, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


def official_inception_surgery(backbone: nn.Module) -> None:
    """inception3_CAM345_cos.py L126-148: unpadded 3x3/s2 stem pools, no pool after Mixed_5d, Mixed_6a s2."""
    backbone.units["stem1"][3] = nn.MaxPool2d(3, 2)
    backbone.units["stem2"][2] = nn.MaxPool2d(3, 2)
    del backbone.units["pool5d"]
    backbone.units["Mixed_6a"] = _MixedSixAStrideTwo(backbone.units["Mixed_6a"])


def our_module(variant: str, num_classes: int, surgery: bool = True):
    _, _, backbone, num_maps, _ = VARIANTS[variant]
    options = dict(backbone=backbone, num_classes=num_classes, pretrained=False, hierarchy="cub", num_maps=num_maps,
                   channels_last=False, **OUR_RECIPE)
    if variant == "vgg16_p":
        # vgg_DA_p: pools 1-3 3x3/s2/p1, 3x3/s1/p1 after conv4 and conv5; conv4's unit includes its pool, conv5's not
        module = get_model("danet", large_feature_map=True, vgg_pooling="acol",
                           backbone_units=["pool3", "conv4_inserted", "conv5"], **options)
    elif variant == "vgg16_large_only":
        module = get_model("danet", large_feature_map=True, **options)
    else:
        module = get_model("danet", **options)
        if backbone == "inception_v3" and surgery:
            official_inception_surgery(module.model.backbone)
    return module


# -- comparisons ---------------------------------------------------------------------------------
def difference(theirs: torch.Tensor, ours: torch.Tensor) -> float:
    """Largest absolute difference; inf when either side is not finite or the shapes differ."""
    theirs, ours = torch.as_tensor(theirs).double(), torch.as_tensor(ours).double()
    if theirs.shape != ours.shape or not (torch.isfinite(theirs).all() and torch.isfinite(ours).all()):
        return math.inf
    return (theirs - ours).abs().max().item()


def official_input(images: torch.Tensor) -> torch.Tensor:
    return (images - torch.tensor(OFFICIAL_MEAN).view(1, 3, 1, 1)) / torch.tensor(OFFICIAL_STD).view(1, 3, 1, 1)


def official_level_maps(network: nn.Module, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """val_hierarchy.py L183-188: ReLU'd K-means per level, child and parent upsampled to ``size`` (28 there)."""
    child = F.upsample(network.get_child_maps(), size=(size, size), mode="bilinear", align_corners=True)
    parent = F.upsample(network.get_parent_maps(), size=(size, size), mode="bilinear", align_corners=True)
    return child.numpy(), parent.numpy(), network.get_root_maps().numpy()


def official_fused(official: Official, network: nn.Module, probabilities: list[np.ndarray], tmp: Path,
                   size: int = 28) -> tuple[np.ndarray, str]:
    """Top-1 maps of ``get_topk_boxes_hier`` (normalized, at the map size: the image file is size x size)."""
    child, parent, root = official_level_maps(network, size)
    note = f"val_hierarchy {size}x{size}"
    try:
        np.broadcast_shapes(child.shape[-2:], root.shape[-2:])
    except ValueError:
        size = root.shape[-1]
        note = (f"val_hierarchy's 28x28 fails (root {root.shape[-1]}x{root.shape[-1]} does not broadcast); "
                f"{size}x{size}")
        child, parent, root = official_level_maps(network, size)
    image = tmp / f"image{size}.png"
    import cv2  # the official code's dependency, imported where it is used

    cv2.imwrite(str(image), np.zeros((size, size, 3), np.uint8))
    maps = []
    for b in range(child.shape[0]):
        _, top_maps = official.localization.get_topk_boxes_hier(
            probabilities[2][b], probabilities[1][b], probabilities[0][b], child[b:b + 1], parent[b:b + 1],
            root[b:b + 1], str(image), 256, 224, topk=(1, 5), threshold=0.05, mode="union")
        maps.append(top_maps[0])
    return np.stack(maps), note


def one_hot(labels: torch.Tensor, size: int) -> np.ndarray:
    return F.one_hot(labels, size).double().numpy()


def compare(official: Official, variant: str, args: argparse.Namespace, tmp: Path) -> dict:
    torch.manual_seed(0)
    theirs = official.network(variant, args.num_classes)
    module = our_module(variant, args.num_classes)
    ours = module.model
    deterministic_weights(theirs)
    tensors = copy_in_order(theirs, ours)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch_size, 3, 224, 224, generator=generator)
    labels = torch.tensor(args.labels[: args.batch_size])
    level_labels = ours.level_labels(labels)  # coarsest first, from our hierarchy
    normalized = official_input(images)
    row = {"variant": variant, "tensors": tensors}

    # 1. eval: logits and the test code's fused maps
    theirs.eval(), ours.eval()
    with torch.no_grad():
        their_logits = theirs(normalized)  # (root, parent, child)
        out = ours.localize(images, labels)
        their_maps, note = official_fused(
            official, theirs, [one_hot(lbl, n) for lbl, n in zip(level_labels, module.hierarchy.level_sizes)], tmp)
    row["map"] = f"{'/'.join(str(m.shape[-1]) for m in (theirs.root_map, theirs.parent_map, theirs.child_map))}; " \
                 f"{note}"
    row["logits"] = [difference(t, o) for t, o in zip(their_logits, out.extras["level_logits"])]
    row["logit scale"] = max(t.abs().max().item() for t in their_logits)
    row["maps"] = difference(torch.from_numpy(their_maps), minmax_normalize(out.maps.float()))
    # item 4 (informational): official fusion of each level's own top-1 vs ours (top-1 species + ancestors)
    with torch.no_grad():
        own = [F.softmax(t, dim=1).numpy() for t in their_logits]
        their_own, _ = official_fused(official, theirs, own, tmp)
        predicted = ours.localize(images)
    top1 = [torch.from_numpy(p).argmax(1) for p in own]
    consistent = sum(all(int(top1[lvl][b]) == int(a[predicted.classes[b]]) for lvl, a in enumerate(ours.ancestors))
                     for b in range(len(images)))
    row["own top-1"] = (consistent, len(images),
                        difference(torch.from_numpy(their_own), minmax_normalize(predicted.maps.float())))

    # 2. train mode: the losses of one forward each
    theirs.train(), module.train()
    captured = {}
    calculate = theirs.calculate_cosineloss

    def capture(maps):
        loss, subset = calculate(maps)
        captured["subset"], captured["total"] = list(subset), maps.shape[1]
        return loss, subset

    theirs.calculate_cosineloss = capture
    random.seed(0)
    with torch.no_grad(), cuda_is_identity():
        logits = theirs(normalized)
        total, root_ce, parent_ce, child_ce, cosine = theirs.get_loss(logits, *level_labels)
    k = VARIANTS[variant][3]
    levels = captured["total"] // k
    mapped = torch.tensor([(levels - 1 - j // k) * k + j % k for j in captured["subset"]])  # (child, parent, root) -> ours
    original = danet_loss.sample_map_subset
    danet_loss.sample_map_subset = lambda num_maps, num_selected, generator=None: mapped
    try:
        batch = WSOLBatch(image=images, label=labels, boxes=torch.full((len(images), 1, 4), -1),
                          num_boxes=torch.zeros(len(images), dtype=torch.long), image_id=["a"] * len(images),
                          orig_size=torch.full((len(images), 2), 224))
        with torch.no_grad():
            losses = module.training_losses(batch)
    finally:
        danet_loss.sample_map_subset = original
    expected_selected = levels * k // 2
    row["losses"] = {
        "ce_level0 (order)": difference(0.5 * root_ce, losses["ce_level0"]),
        "ce_level1 (family)": difference(0.5 * parent_ce, losses["ce_level1"]),
        "ce_level2 (species)": difference(0.5 * child_ce, losses["ce_level2"]),
        "cosine (x alpha)": difference(COS_ALPHA * cosine, losses["cosine"]),
        "total": difference(total, sum(losses.values())),
    }
    row["loss values"] = (total.item(), cosine.item())
    row["subset"] = f"{len(captured['subset'])} of {captured['total']} (ours draws {expected_selected})"
    if len(captured["subset"]) != expected_selected:
        row["losses"]["subset size"] = math.inf

    # 3. learning-rate groups
    theirs.calculate_cosineloss = calculate
    optimizer, wrapped = official.optimizer(variant, theirs)
    their_rate = {id(p): (g["lr"] / BASE_LR, g["weight_decay"], g["momentum"], g["nesterov"])
                  for g in optimizer.param_groups for p in g["params"]}
    our_optimizer = module.configure_optimizers()
    our_optimizer = our_optimizer["optimizer"] if isinstance(our_optimizer, dict) else our_optimizer
    our_rate = {id(p): (g["lr"] / BASE_LR, g["weight_decay"], g["momentum"], g["nesterov"])
                for g in our_optimizer.param_groups for p in g["params"]}
    their_params, our_params = list(wrapped.named_parameters()), list(ours.named_parameters())
    mismatched, counts = [], {}
    if len(their_params) != len(our_params):
        mismatched.append(f"parameter counts differ: official {len(their_params)}, ours {len(our_params)}")
    for (their_name, tp), (our_name, op) in zip(their_params, our_params):
        t, o = their_rate.get(id(tp)), our_rate.get(id(op))
        t_key = "absent" if t is None else f"{t[0]:g}x"
        o_key = "absent" if o is None else f"{o[0]:g}x"
        counts.setdefault(t_key, [0, 0])[0] += 1
        counts.setdefault(o_key, [0, 0])[1] += 1
        if t is None or o is None or not (math.isclose(t[0], o[0]) and math.isclose(t[1], o[1])
                                           and t[2] == o[2] and t[3] == o[3]):
            mismatched.append(f"{their_name} {t} vs {our_name} {o}")
    row["lr"] = (counts, mismatched)
    return row


def hierarchy_check(root: Path) -> tuple[int, int] | None:
    """Official per-image family/order labels against our ``cub`` ancestors: (mismatches, images)."""
    lists = root / "data/CUB_200_2011/list"
    files = [lists / f"{n}.txt" for n in ("train", "family_label", "order_label")]
    if not all(f.is_file() for f in files):
        return None
    table = [dict(line.split() for line in f.read_text().splitlines() if line.strip()) for f in files]
    ancestors = load_hierarchy("cub").ancestor_table()  # [order, family, species]
    wrong = sum(int(table[1][p]) != ancestors[1][int(s)] or int(table[2][p]) != ancestors[0][int(s)]
                for p, s in table[0].items())
    return wrong, len(table[0])


def our_inception_as_built(args: argparse.Namespace) -> str:
    module = our_module("inception_v3", args.num_classes, surgery=False)
    with torch.no_grad():
        out = module.model.eval()(torch.rand(1, 3, 224, 224))
    return "/".join(str(m.shape[-1]) for m in out.level_maps)


def fmt(value: float) -> str:
    return f"{value:.1e}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of xuehaolan/DANet")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--num-classes", type=int, default=200, help="species (the cub hierarchy's 200)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--labels", type=int, nargs="+", default=[12, 187],
                        help="species labels of the batch (default: two of different orders and families)")
    parser.add_argument("--official-commit", default=None,
                        help="the checkout's commit for the report (default: git rev-parse HEAD there)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*upsample.* is deprecated")  # the official F.upsample
    missing = [f for f in REQUIRED if not (args.official / f).is_file()]
    if missing:
        print(f"error: {args.official} is not a checkout of xuehaolan/DANet (no {', '.join(missing)} there)",
              file=sys.stderr)
        return 2
    if len(args.labels) < args.batch_size:
        parser.error(f"--labels needs {args.batch_size} labels")
    commit = args.official_commit or subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "HEAD"], check=False, capture_output=True, text=True).stdout.strip()
    official = Official(args.official)
    print(f"xuehaolan/DANet @ {commit or 'unknown commit'} at {args.official}; image 224 px, batch {args.batch_size}, "
          f"labels {args.labels[:args.batch_size]}, hierarchy cub (11/37/{args.num_classes}), float32")
    worst = 0.0
    check = hierarchy_check(args.official)
    if check is None:
        print("hierarchy: the checkout has no data/CUB_200_2011/list files; not checked")
    else:
        print(f"hierarchy: official family/order labels of {check[1]} training images vs our cub ancestors: "
              f"{check[0]} mismatches")
        worst = max(worst, math.inf if check[0] else 0.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            rows.append(compare(official, variant, args, Path(tmp)))
    print()
    print("| variant | gated | tensors copied | maps root/family/species; official fusion | max abs diff logits "
          "order / family / species | max abs diff fused normalized map | losses (max abs diff) | cosine subset | "
          "official total / cosine loss | lr multipliers official = ours (params) | lr mismatches |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        gated = VARIANTS[row["variant"]][4]
        counts, mismatched = row["lr"]
        diffs = [*row["logits"], row["maps"], *row["losses"].values()]
        if gated:
            worst = max(worst, *(d if math.isfinite(d) else math.inf for d in diffs),
                        math.inf if mismatched else 0.0)
        losses = ", ".join(f"{k} {fmt(v)}" for k, v in row["losses"].items())
        multipliers = ", ".join(f"{k}: {a} / {b}" for k, (a, b) in sorted(counts.items()))
        print(f"| {row['variant']} | {'yes' if gated else 'no'} | {row['tensors']} | {row['map']} | "
              f"{' / '.join(fmt(d) for d in row['logits'])} | {fmt(row['maps'])} | {losses} | {row['subset']} | "
              f"{row['loss values'][0]:.4f} / {row['loss values'][1]:.4f} | {multipliers} | {len(mismatched)}{': ' + '; '.join(mismatched[:4]) if mismatched else ''} |")
    print()
    print("Not gated (differences by design, for the record):")
    print()
    print("| what | official | ours | max abs diff normalized map |")
    print("|---|---|---|---|")
    for row in rows:
        consistent, count, diff = row["own top-1"]
        print(f"| {row['variant']}: fusion of the predicted classes | each level's own top-1 (get_topk_boxes_hier); "
              f"its family and order are the ancestors of its species in {consistent} of {count} images | "
              f"top-1 species and its ancestors | {fmt(diff)} |")
    if "vgg16_large_only" in args.variants:
        row = next(r for r in rows if r["variant"] == "vgg16_large_only")
        print(f"| large_feature_map: true alone (no vgg_pooling) vs vgg_DA_p.py | 3x3 pools (D1), family head after the s1 "
              f"pool of conv4, species head before the last | 2x2 pools, pool4 removed, no s1 pools | "
              f"{fmt(row['maps'])} (logits {' / '.join(fmt(d) for d in row['logits'])}) |")
    if "inception_v3" in args.variants:
        print(f"| InceptionV3 surgery | maps 25/25/12 at 224 | as built (wsolevaluation's): "
              f"{our_inception_as_built(args)} | not comparable (gated row uses the official surgery) |")
    print()
    print(f"largest gated difference {worst:.1e} (tolerance {TOLERANCE:g}; lr groups and hierarchy exact)")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
