"""Parity with the official I2C code (Zhang et al., ECCV 2020): its networks loaded next to ours on the same weights.

The official repository is not part of this project: pass a checkout of xiaomengyc/I2C (written
against @b4aeaa8) and this script imports ``models/{vgg/vgg_i2c, resnet/resnet_i2c,
google/inception3_i2c}.py`` and ``exper/my_optim.py`` from there. Ours is built as the paper recipes
configure it (``experiments/paper/i2c_<backbone>_ilsvrc.yaml``, ``pretrained`` off) except
``seed_sampling: raster``, the official seed rule (ours defaults to the paper's random seeds).
For each backbone (VGG16 = configuration D1 + ``feat4`` smoothing, ResNet50 and InceptionV3 at
output stride 8) both networks get :func:`common.deterministic_weights`, copied in state-dict order
(the official bank ``center_feat_bank``/``counter`` and its unused ``aux_cls`` are left out of the
order and the bank is copied into ours by name), and are compared on:

1. eval mode: logits and the min-max normalized map of the labelled class (official ``atten_map``);
2. train mode, two steps on fixed batches of 2 same-class pairs (labels ``1 1 3 3``), dropout masks
   identical (the same seed before each forward; both draw the same three masks in the same order),
   BatchNorm on batch statistics, no optimizer step between them: the seed positions, the
   classification loss, the unweighted SC loss (official ``pixel_loss.mean()``), the unweighted GC loss,
   and the class-centroid bank and visit counts after the update (read before it in both).
   Step 1 is every class's first visit: the official GC is the distance to its ``randn`` bank,
   ours skips unseen classes (README pitfall 3, by design), so step 1's GC is shown, not judged;
   step 2 revisits the classes (``eta = exp(-0.002)``) and its GC is judged.
3. learning-rate groups: the multiplier of the base rate and the weight decay the official
   ``get_finetune_optimizer`` gives each parameter vs ours (``configure_optimizers``), matched by
   state-dict position; counts per multiplier and the mismatched names are printed.

Stand-ins (nothing of the official code is copied here):
* ``models.obj_simi.obj_simi`` is a compiled C++ op (``models/obj_simi/src/obj_simi_api.cpp``); it is
  not built: :func:`obj_valid_inds` is a pure-torch stand-in with the op's semantics (the first
  ``S`` non-zero mask positions in raster order, reused cyclically; its ``randperm`` is unused).
* the official code calls ``.cuda()`` on new tensors; everything runs on the CPU here, so
  ``torch.Tensor.cuda`` is the identity while the official code runs.

Tolerance: 1e-4 relative to ``max(1, max |official|)`` for every float quantity (logits, maps,
losses, bank; float32 sums of a deep network in a different operation order; the official
``F.pairwise_distance`` also adds ``eps = 1e-6`` to every difference, ours does not: at most about
``1e-6 * sqrt(D)`` on a distance); seed positions, visit counts and learning-rate groups exactly.
The exit status is 1 when any judged row exceeds it (a NaN fails).

    git clone https://github.com/xiaomengyc/I2C /tmp/I2C   # on a machine with network
    PYTHONPATH=src python benchmarks/parity/i2c.py --official /tmp/I2C
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import re
import subprocess
import sys
import types
from collections import Counter, OrderedDict
from pathlib import Path

import torch
import yaml
from common import copy_in_order, cuda_is_identity, deterministic_weights, print_judged_rows

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models import get_model
from wsol_lightning.models.i2c import lightning_model as our_i2c

REPO = Path(__file__).resolve().parents[2]
#: Our backbone -> the official model module.
BACKBONES = {
    "vgg16": "models.vgg.vgg_i2c",
    "resnet50": "models.resnet.resnet_i2c",
    "inception_v3": "models.google.inception3_i2c",
}
#: Files whose presence makes a folder an I2C checkout.
REQUIRED = ("models/vgg/vgg_i2c.py", "models/resnet/resnet_i2c.py", "models/google/inception3_i2c.py",
            "exper/my_optim.py")
#: The official ``args`` (``scripts/train.sh``: ILSVRC, Inception-V3, lr 1e-3).
OFFICIAL_ARGS = {"loss_local_factor": 0.008, "loss_global_factor": 0.001, "local_seed_num": 3, "onehot": "False",
                 "lr": 0.001}
#: Official tensors that are not in our state-dict order (the bank is copied by name; aux_cls is never used).
OFFICIAL_OUTSIDE_ORDER = ("center_feat_bank", "counter", "aux_cls.")
LABELS = (1, 1, 3, 3)  # two same-class pairs at (2k, 2k + 1), distinct classes
TOLERANCE = 1e-4
#: The official input normalization (``utils/LoadData.py``), independent of our backbone constants.
OFFICIAL_MEAN, OFFICIAL_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# -- the official code --------------------------------------------------------------------
def obj_valid_inds(mask: torch.Tensor, batch_valid_inds: torch.Tensor) -> None:
    """Pure-torch stand-in for the official C++ op ``obj_simi.obj_valid_inds`` (``obj_simi_api.cpp``).

    Writes into ``batch_valid_inds [B, S]`` the first ``S`` flat positions where ``mask[b]`` is non-zero,
    in raster order, reused cyclically when fewer exist (``pixel_inds[j % nonzero_num]``). The op's
    ``randperm`` is computed but never used there, so it is not drawn here either.
    """
    for i in range(mask.shape[0]):
        positions = mask[i].reshape(-1).nonzero().flatten()
        if len(positions) == 0:  # the op takes j % 0 there (undefined); a min-max map always has a 1
            raise RuntimeError("obj_valid_inds: an empty object mask")
        for j in range(batch_valid_inds.shape[1]):
            batch_valid_inds[i, j] = positions[j % len(positions)]
    RECORDED["official"].append(batch_valid_inds.clone().long())


RECORDED: dict[str, list[torch.Tensor]] = {"official": [], "ours": []}


def import_official(official: Path) -> dict[str, types.ModuleType]:
    """The official model modules and ``my_optim``, with the compiled seed op replaced by :func:`obj_valid_inds`."""
    stub = types.ModuleType("models.obj_simi.obj_simi")
    stub.obj_valid_inds = obj_valid_inds
    sys.modules["models.obj_simi.obj_simi"] = stub
    try:
        import cv2  # noqa: F401  (inception3_*.py import it, unused by the networks)
    except ImportError:
        sys.modules["cv2"] = types.ModuleType("cv2")
    for path in (official, official / "exper"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    modules = {backbone: importlib.import_module(name) for backbone, name in BACKBONES.items()}
    modules["my_optim"] = importlib.import_module("my_optim")
    return modules




class StateView(torch.nn.Module):
    """A network's state dict without some keys, for :func:`copy_in_order` / :func:`deterministic_weights`."""

    def __init__(self, network: torch.nn.Module, left_out: tuple[str, ...]) -> None:
        super().__init__()
        self.__dict__["network"] = network  # not a submodule: no prefix in the keys
        self.left_out = left_out

    def state_dict(self, *args, **kwargs) -> OrderedDict:
        return OrderedDict((k, v) for k, v in self.network.state_dict().items() if not k.startswith(self.left_out))

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        missing, unexpected = self.network.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(self.left_out)]
        if missing or unexpected:
            raise SystemExit(f"state view: missing {missing[:3]}, unexpected {unexpected[:3]}")


def official_input(images: torch.Tensor) -> torch.Tensor:
    return (images - torch.tensor(OFFICIAL_MEAN).view(1, 3, 1, 1)) / torch.tensor(OFFICIAL_STD).view(1, 3, 1, 1)


def recipe(backbone: str) -> dict:
    """Our model's init args in the ILSVRC paper recipe of ``backbone``, ``pretrained`` and ``init_from`` dropped."""
    path = REPO / "experiments" / "paper" / f"i2c_{backbone}_ilsvrc.yaml"
    args = dict(yaml.safe_load(path.read_text())["model"]["init_args"])
    for key in ("backbone", "pretrained", "init_from", "num_classes"):
        args.pop(key, None)
    return args


# -- comparisons --------------------------------------------------------------------------
def difference(theirs: torch.Tensor, ours: torch.Tensor) -> tuple[float, float]:
    """Largest absolute difference and its scale ``max(1, max |official|)``; NaN when a value is not finite."""
    theirs, ours = theirs.detach().double(), ours.detach().double()
    if theirs.shape != ours.shape:
        raise SystemExit(f"shapes differ: official {tuple(theirs.shape)}, ours {tuple(ours.shape)}")
    if not (torch.isfinite(theirs).all() and torch.isfinite(ours).all()):
        return math.nan, 1.0
    return (theirs - ours).abs().max().item(), max(1.0, theirs.abs().max().item())


def float_row(backbone: str, quantity: str, theirs: torch.Tensor, ours: torch.Tensor, judged: bool = True) -> dict:
    diff, scale = difference(theirs, ours)
    return {"backbone": backbone, "quantity": quantity, "official": fmt(theirs), "ours": fmt(ours),
            "diff": f"{diff:.1e}", "tolerance": f"{TOLERANCE * scale:.1e}" if judged else "not judged",
            "ok": (diff <= TOLERANCE * scale) if judged else None}


def exact_row(backbone: str, quantity: str, theirs, ours, shown_theirs: str, shown_ours: str, diff: str) -> dict:
    return {"backbone": backbone, "quantity": quantity, "official": shown_theirs, "ours": shown_ours, "diff": diff,
            "tolerance": "exact", "ok": theirs == ours}


def fmt(tensor: torch.Tensor) -> str:
    tensor = tensor.detach()
    if tensor.numel() == 1:
        return f"{tensor.item():.6g}"
    return f"max abs {tensor.abs().max().item():.4g}"


def build(modules: dict, backbone: str, args: argparse.Namespace):
    torch.manual_seed(0)
    official_args = argparse.Namespace(num_classes=args.num_classes, **OFFICIAL_ARGS)
    with cuda_is_identity():
        theirs = modules[backbone].model(pretrained=False, num_classes=args.num_classes, args=official_args)
    options = recipe(backbone)
    options.update(seed_sampling="raster", channels_last=False)
    module = get_model("i2c", backbone=backbone, num_classes=args.num_classes, pretrained=False, **options)
    ours = module.model
    deterministic_weights(StateView(theirs, OFFICIAL_OUTSIDE_ORDER))
    copied = copy_in_order(StateView(theirs, OFFICIAL_OUTSIDE_ORDER), StateView(ours, ("centroid_bank.",)))
    with torch.no_grad():
        ours.centroid_bank.centroids.copy_(theirs.center_feat_bank)
        ours.centroid_bank.visit_count.copy_(theirs.counter.long())
    return theirs, module, copied, options


def compare_eval(theirs, ours, backbone: str, args: argparse.Namespace) -> list[dict]:
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor(LABELS)[: args.batch_size]
    theirs.eval(), ours.eval()
    with torch.no_grad(), cuda_is_identity():
        their_logits, their_maps, _ = theirs(official_input(images), labels)
        out = ours.localize(images, labels)
    size = "x".join(map(str, out.maps.shape[-2:]))
    return [float_row(backbone, "eval logits", their_logits, out.logits),
            float_row(backbone, f"eval normalized map ({size})", their_maps, minmax_normalize(out.maps.float()))]


def record_our_seeds(*args, **kwargs):
    positions = SELECT_OBJECT_SEEDS(*args, **kwargs)
    RECORDED["ours"].append(positions.clone())
    return positions


SELECT_OBJECT_SEEDS = our_i2c.select_object_seeds


def training_step(theirs, module, backbone: str, step: int, args: argparse.Namespace) -> list[dict]:
    images = torch.rand(len(LABELS), 3, args.image_size, args.image_size,
                        generator=torch.Generator().manual_seed(1 + step))
    labels = torch.tensor(LABELS)
    ours = module.model
    theirs.train(), ours.train()
    RECORDED["official"].clear(), RECORDED["ours"].clear()
    torch.manual_seed(100 + step)  # the same dropout masks in both
    with cuda_is_identity():
        their_out = theirs(official_input(images), labels)
        _, their_ce, _, their_gc = theirs.get_loss(their_out, labels)
    torch.manual_seed(100 + step)
    batch = WSOLBatch(image=images, label=labels, boxes=torch.full((len(labels), 1, 4), -1),
                      num_boxes=torch.zeros(len(labels), dtype=torch.long), image_id=[str(i) for i in range(len(labels))],
                      orig_size=torch.full((len(labels), 2), args.image_size))
    our_i2c.select_object_seeds = record_our_seeds
    try:
        losses = module.training_losses(batch)
    finally:
        our_i2c.select_object_seeds = SELECT_OBJECT_SEEDS
    hp = module.hparams
    their_seeds, our_seeds = RECORDED["official"][0], RECORDED["ours"][0]
    classes = torch.tensor(sorted(set(LABELS)))
    bank = ours.centroid_bank
    first = step == 1
    gc_name = f"step {step} GC (unweighted)" + (": first visit, official vs randn bank, ours skipped" if first else "")
    return [
        exact_row(backbone, f"step {step} seed positions", their_seeds.tolist(), our_seeds.tolist(),
                  str(their_seeds.tolist()), str(our_seeds.tolist()),
                  f"{int((their_seeds != our_seeds).sum())} differ"),
        float_row(backbone, f"step {step} CE", their_ce, losses["ce"]),
        float_row(backbone, f"step {step} SC (unweighted)", their_out[1].mean(),
                  losses["sc"] / hp.sc_weight),
        float_row(backbone, gc_name, their_gc / theirs.loss_global_factor, losses["gc"] / hp.gc_weight,
                  judged=not first),
        float_row(backbone, f"step {step} bank after update (classes {classes.tolist()})",
                  theirs.center_feat_bank[classes], bank.centroids[classes]),
        exact_row(backbone, f"step {step} visit counts", theirs.counter.long().tolist(), bank.visit_count.tolist(),
                  str(theirs.counter.long().tolist()), str(bank.visit_count.tolist()),
                  f"{int((theirs.counter.long() != bank.visit_count).sum())} differ"),
    ]


def learning_rates(modules: dict, theirs, module) -> tuple[dict, list[str]]:
    """Row of the lr-multiplier / weight-decay comparison and the mismatched parameters."""
    base = OFFICIAL_ARGS["lr"]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every head parameter
        their_optimizer = modules["my_optim"].get_finetune_optimizer(argparse.Namespace(**OFFICIAL_ARGS), theirs)
    configured = module.configure_optimizers()
    our_optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    our_base = module.hparams.lr

    def rates(optimizer, lr) -> dict[int, tuple[float, float]]:
        return {id(p): (round(g["lr"] / lr, 4), g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}

    their_rates, our_rates = rates(their_optimizer, base), rates(our_optimizer, our_base)
    theirs_keys = list(StateView(theirs, OFFICIAL_OUTSIDE_ORDER).state_dict())
    ours_keys = list(StateView(module.model, ("centroid_bank.",)).state_dict())
    our_names = dict(zip(theirs_keys, ours_keys))
    our_params = dict(module.model.named_parameters())
    their_counts, our_counts, groups, outside = Counter(), Counter(), Counter(), []
    for name, param in theirs.named_parameters():
        theirs_rate = their_rates.get(id(param))
        if name not in our_names:
            why = ("requires_grad=False; ours keeps the bank as buffers" if not param.requires_grad
                   else "a layer the official forward never uses; not in ours")
            outside.append(f"{name}: official {show(theirs_rate)} ({why})")
            continue
        ours_rate = our_rates.get(id(our_params[our_names[name]]))
        their_counts[theirs_rate] += 1
        our_counts[ours_rate] += 1
        if theirs_rate != ours_rate:
            our_unit = re.sub(r"_\d+$", "_*", ".".join(our_names[name].split(".")[:3]))
            groups[(name.split(".")[0], our_unit, theirs_rate, ours_rate)] += 1

    def counts(counter: Counter) -> str:
        return ", ".join(f"{show(k)}: {v}" for k, v in sorted(counter.items(), key=lambda kv: kv[0] or (0, 0)))

    mismatched = sum(groups.values())
    row = {"quantity": "lr multiplier / weight decay per parameter", "official": counts(their_counts),
           "ours": counts(our_counts), "diff": f"{mismatched} of {sum(their_counts.values())} differ",
           "tolerance": "exact", "ok": not mismatched}
    lines = [f"{unit}.* (ours {our_unit}): {n} parameters official {show(a)}, ours {show(b)}"
             for (unit, our_unit, a, b), n in groups.items()]
    return row, lines + outside


def show(rate: tuple[float, float] | None) -> str:
    return "no group" if rate is None else f"{rate[0]:g}x wd {rate[1]:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of xiaomengyc/I2C")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--num-classes", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=2, help="eval batch (training uses 2 pairs)")
    parser.add_argument("--official-commit", default=None,
                        help="the checkout's commit for the report (default: git rev-parse HEAD there)")
    args = parser.parse_args()
    missing = [name for name in REQUIRED if not (args.official / name).is_file()]
    if missing:
        print(f"error: {args.official} is not a checkout of xiaomengyc/I2C (no {missing[0]} there)", file=sys.stderr)
        return 2
    if args.num_classes <= max(LABELS):
        parser.error(f"--num-classes must exceed {max(LABELS)}")
    commit = args.official_commit or subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip() or "unknown commit"
    modules = import_official(args.official)
    print(f"xiaomengyc/I2C @ {commit} at {args.official}; image {args.image_size} px, {args.num_classes} classes, "
          f"eval batch {args.batch_size}, training labels {list(LABELS)}, float32, CPU")
    rows, notes = [], []
    for backbone in args.backbones:
        theirs, module, copied, options = build(modules, backbone, args)
        notes.append(f"{backbone}: {copied} tensors copied; ours: "
                     + ", ".join(f"{k}={options[k]}" for k in ("large_feature_map", "vgg_pooling", "feature_smoothing",
                                                               "seed_sampling", "lr", "head_lr_multiplier",
                                                               "bias_lr_multiplier", "weight_decay") if k in options))
        rows += compare_eval(theirs, module.model, backbone, args)
        for step in (1, 2):
            rows += training_step(theirs, module, backbone, step, args)
        row, mismatched = learning_rates(modules, theirs, module)
        rows.append({"backbone": backbone, **row})
        notes += [f"{backbone} lr: {line}" for line in mismatched]
    return print_judged_rows(rows, "backbone", notes)


if __name__ == "__main__":
    sys.exit(main())
