"""Parity with the official MCIS classifier code (Sun et al., ECCV 2020): co-attention, training loss, test map, lr groups.

The official repository is not part of this project: pass a checkout of GuoleiSun/MCIS_wsss (written
against @1fc8f75) and this script imports ``Classifier/models/vgg.py`` (``CoattentionModel``),
``Classifier/scripts/train.py`` (``train``, ``get_model``) and ``Classifier/scripts/test.py``
(``validate``, ``aggregate``) from there and *runs* them; nothing of the official code is copied or
restated here. The official head hard-codes 20 classes (``vgg.py`` L26, L207: ``view(-1, 20)``), so
both sides have 20 classes; the labels use a handful of them.

Backbone. Ours is the shared wsolevaluation VGG16 with ``large_feature_map`` (stride 8, models/mcis
README), not the official configuration ``D1`` (2x2 pools, pool4 3x3/s1, dilated conv5). The
official network gets :func:`common.deterministic_weights`; its ``features`` weights are copied into
our backbone (same 13 convolutions, so an ``info`` row shows how far the two backbones' outputs are
apart on the same weights), and then the official ``vgg.features`` is *replaced* by a copy of our
backbone (which normalizes its own ``[0, 1]`` input), so that both heads receive the same backbone
output from the same images; everything after the backbone is the official code. The heads are
copied by name (``extra_linear_e.weight`` scaled by ``AFFINITY_SCALE`` = 0.01 first, so that
``P`` is of order 1 and the softmaxes are not one-hot): ``extra_convs`` -> ``extra_convs``, ``extra_last_conv`` -> ``single_classifier``,
``extra_gate`` -> ``coattention_classifier``, ``extra_gate_merge`` -> ``common_gate`` and
``extra_linear_e.weight`` -> ``coattention_weight`` **transposed**: ``nn.Linear`` computes
``x W^T``, so the official affinity is ``F_m^T W_lin^T F_n`` (``vgg.py`` L185, L190) and ours
``F_m^T W F_n`` (``torch_model.coattention``); an ``info`` row shows the affinity when the tensor is
copied as is (what loading an official checkpoint without the transpose would give).

Compared (same weights on both sides, float32, CPU):

1. one forward of a pair batch (two pairs, image m at ``--image-size``, image n at 3/4 of it so
   that ``N_m != N_n``): official ``CoattentionModel.forward`` vs our ``MCISNet.forward`` +
   ``pair_forward``. The official locals are recorded, not recomputed: ``torch.bmm``, ``F.softmax``
   and ``F.sigmoid`` of ``vgg.py`` are wrapped by recorders (call order L190, L193-196, L202-203) and
   forward hooks read the inputs/outputs of ``extra_gate`` / ``extra_gate_merge``; ours are recorded
   by wrapping ``torch_model.coattention`` and hooking ``coattention_classifier`` / ``common_gate``
   (our gate ``G = sigmoid(common_gate(F'))`` is computed inline in ``pair_forward``; the row applies
   ``torch.sigmoid`` to the hooked ``common_gate`` output). Rows: features, affinity ``P``, ``A``
   (softmax over ``N_m``), ``B`` (softmax over ``N_n``, ours stores ``B^T``), attended features,
   co-attention maps and logits, gate logits and gates, contrastive features and logits, single logits.
2. the training loss of one step on 2 pairs with multi-hot targets: the official ``train.train`` is
   run for one epoch on a one-batch loader (its data loader, ``validate``, ``save_checkpoint`` and
   ``get_model`` replaced; ``AverageMeter`` replaced by a recorder, which yields every term the loop
   logs, L289-302; the optimizer replaced by one that records the gradients at ``step()`` and does not
   step) vs our ``MCIS(multilabel=True).training_losses`` (``current_epoch`` patched). Structure
   difference: the official loop forms the self-pairs (flip, 0.75x, 2x) for ``input1`` only (L209-211,
   L260-265), ours for every image of the batch. Like for like: our ``single``, ``coattention`` and
   ``contrastive`` come from the batch of pairs ``(m0, n0, m1, n1)``, our self-pair terms from a second
   call on the batch of the ``m`` images alone (per self-pair values recorded by wrapping
   ``label_loss``); the like-for-like total is their sum, and its gradient (both calls' backward)
   is compared with the official one. Our actual total (self-pairs for all four images) is shown
   as ``info``. The official self-pair partners are our ``MCISNet.self_pair_images`` tensors (the
   official loader makes them from the PIL image, ``utils/LoadData.py``; not compared). Scenarios: epoch
   0 (contrastive off), epoch 2 with a unique label on both sides, epoch 2 with unique labels on the
   ``m`` side only (the per-side gate of L278-282). The official contrastive contribution is read off
   its logged total minus its eight logged other terms.
3. the test-time co-attention map of one image and its class: the official ``test.validate`` is run
   on a one-item loader (image m, 3 partners of its class, the self-pair partners) with ``get_model``
   replaced by the prepared network; its raw maps (recorded by wrapping ``test.aggregate``) and the
   uint8 PNG it writes are compared with our ``localize`` (``localization_map="coattention"``) on the
   batch ``[m, p1, p2, p3]`` of one class, whose raw maps are recorded by wrapping
   ``torch_model.aggregate_coattention_maps``. The official resize of the rescaled self-pair maps is
   to a hard-coded 32x32 (``test.py`` L192, L196), so this part runs at ``--map-image-size`` 256
   (32x32 maps); the official map is scaled to 255 and truncated to uint8 (L74, L79, L83), ours is
   compared as ``255 * map``.
4. learning-rate groups: the official ``train.get_model`` optimizer (``pretrained=True`` with
   ``model_zoo.load_url`` returning an empty dict, nothing downloaded) vs our
   ``configure_optimizers()`` with ``experiments/paper/mcis_vgg16_cub.yaml``; official names mapped
   to ours as above, for the paper recipe (its ``bias_lr_multiplier: 2``: the official biases 2x/20x),
   judged exactly, and the SGD settings.

Shims while the official code runs: ``torch.Tensor.cuda`` and ``nn.Module.cuda`` are the identity;
``VGG_coattention`` gets a temporary ``att_dir`` (it creates the folder); stdout is silenced.

Tolerance: 1e-4 relative to ``max(1, max |official|)`` for every float quantity (float32 sums in a
different operation order: einsum vs bmm); gradients 1e-4 relative to the largest official gradient;
the fused test map 1 grey level + 1e-3 (the official uint8 truncation); included-term flags, lr
groups and SGD settings exactly. ``info`` rows are not judged. The exit status is
1 when any judged row exceeds its tolerance (a NaN fails), 2 when ``--official`` is not a checkout.

    git clone https://github.com/GuoleiSun/MCIS_wsss /tmp/MCIS_wsss   # on a machine with network
    NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=disabled PYTHONPATH=src python benchmarks/parity/mcis.py --official /tmp/MCIS_wsss
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
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from common import cuda_is_identity, deterministic_weights, print_judged_rows, refuse_shadowed_packages
from torch import nn

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models import get_model
from wsol_lightning.models.mcis import MCIS
from wsol_lightning.models.mcis import lightning_model as our_lightning
from wsol_lightning.models.mcis import torch_model as our_torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "experiments" / "paper" / "mcis_vgg16_cub.yaml"
REQUIRED = ("Classifier/models/vgg.py", "Classifier/scripts/train.py", "Classifier/scripts/test.py",
            "Classifier/scripts/my_optim.py")
NUM_CLASSES = 20  # official vgg.py L26 / L207: 20 classes hard-coded
TOLERANCE = 1e-4
MAP_TOLERANCE = 1.0 + 1e-3  # grey levels: the official uint8 truncation
#: official head name -> ours (the backbone is matched by position).
HEAD_NAMES = {"vgg.extra_convs": "extra_convs", "vgg.extra_last_conv": "single_classifier",
              "extra_gate_merge": "common_gate", "extra_gate": "coattention_classifier",
              "extra_linear_e": "coattention_weight"}
#: Multi-hot label sets of the training pairs (m, n): scenario -> [(l_m, l_n), ...]; every pair shares a label
#: as the official sampler makes them (LoadData ``VOCDataset_siamese_more_augumentation``).
PAIRS_BOTH_SIDES = [({1, 4}, {1}), ({3}, {3, 7})]
PAIRS_M_SIDE_ONLY = [({1, 4}, {1}), ({3}, {3})]
#: Factor on the deterministic ``extra_linear_e.weight`` (both sides) so that the affinity is of order 1.
AFFINITY_SCALE = 0.01
OFFICIAL_SGD = {"momentum": 0.9, "weight_decay": 0.0005, "nesterov": True}


# -- the official code --------------------------------------------------------------------


def load_official(official: Path) -> SimpleNamespace:
    classifier = official / "Classifier"
    for path in (classifier / "scripts", classifier):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    refuse_shadowed_packages(official, ("models", "utils"))
    with contextlib.redirect_stdout(io.StringIO()):  # train.py prints paths at import
        vgg = importlib.import_module("models.vgg")
        train = importlib.import_module("train")
        test = importlib.import_module("test")
    return SimpleNamespace(vgg=vgg, train=train, test=test)


class Recorder:
    """Stands in for a module (``torch`` / ``F`` in ``vgg.py``): records the results of some functions."""

    def __init__(self, target, names: tuple[str, ...], log: list) -> None:
        self._target, self._names, self._log = target, names, log

    def __getattr__(self, name):
        attribute = getattr(self._target, name)
        if name not in self._names:
            return attribute

        def recorded(*args, **kwargs):
            result = attribute(*args, **kwargs)
            self._log.append((name, result))
            return result
        return recorded


@contextlib.contextmanager
def patched(owner, name: str, value):
    """Set ``owner.name`` for the duration (restoring it, or deleting it when it was inherited)."""
    had = name in vars(owner)  # otherwise inherited (a class) or a method (an instance): delete to restore
    old = getattr(owner, name, None)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)


def hook(module: nn.Module, log: list):
    return module.register_forward_hook(lambda _m, inputs, output: log.append((inputs[0], output)))


# -- building both sides ------------------------------------------------------------------
def recipe_init_args(**overrides) -> dict:
    init_args = dict(yaml.safe_load(RECIPE.read_text())["model"]["init_args"])
    init_args.update(pretrained=False, num_classes=NUM_CLASSES, channels_last=False, **overrides)
    return init_args


def name_map(theirs: nn.Module, ours: nn.Module) -> dict[str, str]:
    """Official parameter / state-dict name -> ours: the backbone by position, the heads by name."""
    their_backbone = [k for k in theirs.state_dict() if k.startswith("vgg.features.")]
    our_backbone = [k for k in ours.state_dict() if k.startswith("backbone.")]
    if len(their_backbone) != len(our_backbone):
        raise SystemExit(f"backbones differ in length: official {len(their_backbone)}, ours {len(our_backbone)}")
    mapping = dict(zip(their_backbone, our_backbone))
    for key in theirs.state_dict():
        for prefix, our_prefix in HEAD_NAMES.items():
            if key.startswith(prefix + "."):
                mapping[key] = our_prefix if our_prefix == "coattention_weight" else our_prefix + key[len(prefix):]
                break
    missing = set(theirs.state_dict()) - set(mapping)
    if missing or sorted(mapping.values()) != sorted(ours.state_dict()):
        raise SystemExit(f"state dicts do not align: official left {sorted(missing)[:3]}, "
                         f"ours left {sorted(set(ours.state_dict()) - set(mapping.values()))[:3]}")
    return mapping


def build(lib: SimpleNamespace, att_dir: str, **our_overrides):
    """The official network (deterministic weights, our backbone in place of ``D1``) and our module."""
    with contextlib.redirect_stdout(io.StringIO()), cuda_is_identity():
        theirs = lib.vgg.coattentionmodel(pretrained=False, num_classes=NUM_CLASSES, att_dir=att_dir)
    deterministic_weights(theirs)
    with torch.no_grad():  # P = O(1): softmaxes not one-hot (at He scale P has std ~100 here)
        theirs.extra_linear_e.weight.mul_(AFFINITY_SCALE)
    module = get_model("mcis", **recipe_init_args(multilabel=True, **our_overrides))
    ours = module.model
    mapping = name_map(theirs, ours)
    state = {}
    for key, value in theirs.state_dict().items():
        state[mapping[key]] = value.t().clone() if key == "extra_linear_e.weight" else value.clone()
    ours.load_state_dict(state)
    d1 = theirs.vgg.features
    theirs.vgg.features = copy.deepcopy(ours.backbone)  # the same backbone output on both sides
    return theirs, module, mapping, d1


def official_input(images: torch.Tensor) -> torch.Tensor:
    """The official normalization (``utils/LoadData.py``), for the ``D1`` info row only."""
    mean, std = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))
    return (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


# -- rows ------------------------------------------------------------------------------------
def fmt(tensor) -> str:
    tensor = torch.as_tensor(tensor).detach()
    if tensor.numel() == 1:
        return f"{tensor.item():.6g}"
    return f"{'x'.join(map(str, tensor.shape))}, max abs {tensor.abs().max().item():.4g}"


def float_row(part: str, quantity: str, theirs, ours, kind: str = "judged", tolerance: float | None = None) -> dict:
    theirs, ours = torch.as_tensor(theirs).detach().double(), torch.as_tensor(ours).detach().double()
    if theirs.shape != ours.shape:
        diff, scale = math.inf, 1.0
        quantity += f" (shapes differ: official {tuple(theirs.shape)}, ours {tuple(ours.shape)})"
    elif not (torch.isfinite(theirs).all() and torch.isfinite(ours).all()):
        diff, scale = math.nan, 1.0
    else:
        diff, scale = (theirs - ours).abs().max().item() if theirs.numel() else 0.0, max(1.0, theirs.abs().max().item())
    limit = TOLERANCE * scale if tolerance is None else tolerance
    judged = kind == "judged"
    return {"part": part, "quantity": quantity, "official": fmt(theirs) if theirs.numel() else "-",
            "ours": fmt(ours) if ours.numel() else "-", "diff": f"{diff:.1e}",
            "tolerance": f"{limit:.1e}" if judged else kind, "ok": (diff <= limit) if judged else None}


def exact_row(part: str, quantity: str, theirs, ours, kind: str = "judged") -> dict:
    judged = kind == "judged"
    return {"part": part, "quantity": quantity, "official": str(theirs), "ours": str(ours),
            "diff": "same" if theirs == ours else "differ", "tolerance": "exact" if judged else kind,
            "ok": (theirs == ours) if judged else None}


# -- 1. co-attention of a pair ----------------------------------------------------------------
def compare_pair(lib, theirs, ours, args) -> list[dict]:
    size_m, size_n = args.image_size, args.image_size * 3 // 4
    generator = torch.Generator().manual_seed(1)
    images_m = torch.rand(2, 3, size_m, size_m, generator=generator)
    images_n = torch.rand(2, 3, size_n, size_n, generator=generator)
    theirs.eval(), ours.eval()
    log, gates, classifier, features = [], [], [], []
    handles = [hook(theirs.extra_gate_merge, gates), hook(theirs.extra_gate, classifier)]
    handles.append(theirs.vgg.register_forward_hook(lambda _m, _i, output: features.append(output[0])))
    with torch.no_grad(), cuda_is_identity(), \
            patched(lib.vgg, "torch", Recorder(torch, ("bmm",), log)), \
            patched(lib.vgg, "F", Recorder(F, ("softmax", "sigmoid"), log)):
        their_logits, their_co = theirs([images_m, images_n])
        cam1, _, co_map1, co_map2, _, _ = theirs.get_heatmaps()
    for handle in handles:
        handle.remove()
    bmm = [t for name, t in log if name == "bmm"]  # L190 A2, L195 feature2_att, L196 feature1_att
    softmax = [t for name, t in log if name == "softmax"]  # L193 A, L194 B
    sigmoid = [t for name, t in log if name == "sigmoid"]  # L202-203 gates
    recorded, our_gates, our_classifier = [], [], []
    original = our_torch.coattention

    def record_coattention(*a, **k):
        result = original(*a, **k)
        recorded.append(result)
        return result
    handles = [hook(ours.common_gate, our_gates), hook(ours.coattention_classifier, our_classifier)]
    with torch.no_grad(), patched(our_torch, "coattention", record_coattention):
        out_m, out_n = ours(images_m), ours(images_n)
        pair = ours.pair_forward(out_m.features, out_n.features)
    for handle in handles:
        handle.remove()
    att = recorded[0]
    p = len(images_m)
    h, w = out_m.features.shape[-2:]
    rows = [
        float_row("pair", "features F_m (after extra_convs)", features[0], out_m.features),
        float_row("pair", "features F_n", features[1], out_n.features),
        float_row("pair", "single logits [s_m; s_n]", their_logits, torch.cat([out_m.logits, out_n.logits])),
        float_row("pair", "single class maps of m", cam1, out_m.class_maps),
        float_row("pair", f"affinity P = F_m^T W F_n ({h * w}x{att.affinity.shape[-1]})", bmm[0], att.affinity),
        float_row("pair", f"A = softmax over N_m (mean column max {att.attention_m.amax(1).mean():.2f})", softmax[0],
                  att.attention_m),
        float_row("pair", "B = softmax over N_n (ours stores B^T)", softmax[1], att.attention_n.transpose(1, 2)),
        float_row("pair", "attended F_m' = F_n B", classifier[0][0], att.attended_m),
        float_row("pair", "attended F_n' = F_m A", classifier[1][0], att.attended_n),
        float_row("pair", "attended F_n' (official bmm, flat)", bmm[1], att.attended_n.flatten(2)),
        float_row("pair", "co-attention maps of m", co_map1, pair.coattention_maps_m),
        float_row("pair", "co-attention maps of n", co_map2, pair.coattention_maps_n),
        float_row("pair", "co-attention logits s^co_m", their_co[:p], pair.coattention_logits_m),
        float_row("pair", "co-attention logits s^co_n", their_co[p:2 * p], pair.coattention_logits_n),
        float_row("pair", "gate logits conv_b(F_m')", gates[0][1], our_gates[0][1]),
        float_row("pair", "gate logits conv_b(F_n')", gates[1][1], our_gates[1][1]),
        float_row("pair", "gate G_m = sigmoid(conv_b(F_m'))", sigmoid[0], torch.sigmoid(our_gates[0][1])),
        float_row("pair", "gate G_n", sigmoid[1], torch.sigmoid(our_gates[1][1])),
        float_row("pair", "contrastive features F_m (1 - G_m)", classifier[2][0], our_classifier[2][0]),
        float_row("pair", "contrastive features F_n (1 - G_n)", classifier[3][0], our_classifier[3][0]),
        float_row("pair", "contrastive logits s^c_m", their_co[2 * p:3 * p], pair.contrastive_logits_m),
        float_row("pair", "contrastive logits s^c_n", their_co[3 * p:], pair.contrastive_logits_n),
    ]
    untransposed = torch.einsum("pki,kl,plj->pij", out_m.features.flatten(2), ours.coattention_weight.t(),
                                out_n.features.flatten(2))
    rows.append(float_row("pair", "affinity with extra_linear_e.weight copied untransposed", bmm[0], untransposed,
                          kind="info"))
    return rows


# -- 2. training loss -------------------------------------------------------------------------
def multi_hot(label_sets) -> torch.Tensor:
    targets = torch.zeros(len(label_sets), NUM_CLASSES)
    for row, labels in enumerate(label_sets):
        targets[row, sorted(labels)] = 1.0
    return targets


def make_batch(images: torch.Tensor, targets: torch.Tensor) -> WSOLBatch:
    size = images.shape[0]
    return WSOLBatch(image=images, label=targets.argmax(1), boxes=torch.full((size, 1, 4), -1, dtype=torch.long),
                     num_boxes=torch.zeros(size, dtype=torch.long), image_id=[str(i) for i in range(size)],
                     orig_size=torch.tensor([list(images.shape[-2:])] * size), multi_hot=targets)


class MeterRecorder:
    """Stands in for ``AverageMeter`` in ``train.py``: keeps every value the loop logs (L289-302)."""

    created: ClassVar[list] = []

    def __init__(self) -> None:
        self.values, self.val, self.avg = [], 0.0, 0.0
        MeterRecorder.created.append(self)

    def reset(self) -> None:
        self.values = []

    def update(self, val, n=1) -> None:
        self.values.append(val)
        self.val = self.avg = val


class GradientRecorder:
    """Stands in for the official SGD: records the gradients at ``step()``, changes no weight."""

    def __init__(self, network: nn.Module, lr: float) -> None:
        self.network, self.param_groups, self.gradients = network, [{"lr": lr}], None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.network.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:  # read by the checkpoint dict of L331-338 (save_checkpoint is replaced)
        return {}

    def step(self) -> None:
        self.gradients = {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
                          for n, p in self.network.named_parameters()}


#: The meters in the order train.py L143-154 creates them.
METERS = ("batch_time", "total", "L_s", "L_co", "flip L_s", "flip L_co", "0.75x L_s", "0.75x L_co", "2x L_s",
          "2x L_co", "L_con m", "L_con n")


def official_step(lib, theirs, images_m, images_n, partners, labels_m, labels_n, epoch):
    """One official training step (``train.train``, one batch, epoch ``epoch``): the logged terms and the gradients."""
    optimizer = GradientRecorder(theirs, 0.001)
    batch = (["m"] * len(images_m), ["n"] * len(images_n), images_m, images_n, partners, labels_m, labels_n)
    args = SimpleNamespace(epoch=epoch + 1, current_epoch=epoch, global_counter=0, batch_size=len(images_m),
                           decay_points="5,10", disp_interval=100, lr=0.001, dataset="pascal_voc")
    MeterRecorder.created = []
    with contextlib.ExitStack() as stack:
        for name, value in (("train_data_loader_siamese_more_augumentation", lambda _args: ([batch], [])),
                            ("get_model", lambda _args: (theirs, optimizer)),
                            ("validate", lambda *_a, **_k: None), ("save_checkpoint", lambda *_a, **_k: None),
                            ("AverageMeter", MeterRecorder)):
            stack.enter_context(patched(lib.train, name, value))
        stack.enter_context(cuda_is_identity())
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        lib.train.train(args)
    meters = dict(zip(METERS, MeterRecorder.created))
    terms = {name: (meter.values[0] if meter.values else None) for name, meter in meters.items() if name != "batch_time"}
    return terms, optimizer.gradients


def our_losses(module, batch, epoch):
    """Our ``training_losses`` at ``epoch`` with every ``label_loss`` call and the pair outputs recorded."""
    calls, pairs = [], []
    original_loss, original_pair = our_lightning.label_loss, module.model.pair_forward

    def record_loss(logits, targets, kind="mlsm"):
        value = original_loss(logits, targets, kind)
        calls.append((logits, value))
        return value

    def record_pair(*a, **k):
        result = original_pair(*a, **k)
        pairs.append(result)
        return result
    with patched(MCIS, "current_epoch", property(lambda self: epoch)), \
            patched(our_lightning, "label_loss", record_loss), patched(module.model, "pair_forward", record_pair):
        losses = module.training_losses(batch)
    return losses, calls, pairs


def compare_training(lib, args) -> list[dict]:
    rows = []
    for scenario, epoch, label_pairs in (("epoch 0", 0, PAIRS_BOTH_SIDES), ("epoch 2, unique both sides", 2, PAIRS_BOTH_SIDES),
                                         ("epoch 2, unique m side only", 2, PAIRS_M_SIDE_ONLY)):
        with tempfile.TemporaryDirectory() as folder:
            theirs, module, mapping, _ = build(lib, folder)
        ours = module.model
        theirs.train(), ours.train()
        generator = torch.Generator().manual_seed(2)
        images_m = torch.rand(len(label_pairs), 3, args.image_size, args.image_size, generator=generator)
        images_n = torch.rand(len(label_pairs), 3, args.image_size, args.image_size, generator=generator)
        labels_m, labels_n = multi_hot([m for m, _ in label_pairs]), multi_hot([n for _, n in label_pairs])
        with torch.no_grad():
            partners = [t.clone() for t in ours.self_pair_images(images_m)]
        terms, their_grads = official_step(lib, theirs, images_m, images_n, partners, labels_m, labels_n, epoch)
        # ours: the pairs (m0, n0, m1, n1) for L_s, L_co, L_con; the m images alone for the self-pair terms
        interleaved = torch.stack([images_m, images_n], 1).flatten(0, 1)
        targets = torch.stack([labels_m, labels_n], 1).flatten(0, 1)
        ours.zero_grad(set_to_none=True)
        losses, calls, pairs = our_losses(module, make_batch(interleaved, targets), epoch)
        pair = pairs[0]
        contrastive_calls = {side: next((v for logits, v in calls if logits is getattr(pair, f"contrastive_logits_{side}")),
                                        None) for side in ("m", "n")}
        (losses["single"] + losses["coattention"] + losses["contrastive"]).backward()
        full_total = sum(v.detach() for v in losses.values())
        self_losses, self_calls, _ = our_losses(module, make_batch(images_m, labels_m), epoch)
        (self_losses["self_pair_single"] + self_losses["self_pair_coattention"]).backward()
        self_terms = [v for _, v in self_calls[-6:]]  # flip, 0.75x, 2x: (L_s, L_co) each
        like_total = losses["single"] + losses["coattention"] + losses["contrastive"] \
            + self_losses["self_pair_single"] + self_losses["self_pair_coattention"]
        others = sum(terms[k] for k in METERS[2:10])
        their_contrastive = terms["total"] - others
        part = f"loss, {scenario}"
        rows += [
            float_row(part, "L_s = MLSM([s_m; s_n], [l_m; l_n])", terms["L_s"], losses["single"]),
            float_row(part, "L_co = MLSM([s^co_m; s^co_n], [l_cap; l_cap])", terms["L_co"], losses["coattention"]),
        ]
        for side, key in (("m", "L_con m"), ("n", "L_con n")):
            unique = (labels_m if side == "m" else labels_n) - labels_m * labels_n
            # the official meter logs the term whenever a unique label exists (L299-302); it enters the total
            # only from epoch 2 (L278-282); ours computes it only when it enters the total
            included = epoch >= 2 and bool((unique > 0).any())
            rows.append(exact_row(part, f"L_con {side} side included (official: epoch >= 2 and any unique)",
                                  included, contrastive_calls[side] is not None))
            if included and contrastive_calls[side] is not None:
                other = "n" if side == "m" else "m"
                rows.append(float_row(part, f"L_con {side} side = MLSM(s^c_{side}, l_{side} minus l_{other})",
                                      terms[key], contrastive_calls[side]))
        rows.append(float_row(part, "contrastive part of the total (official: total - 8 logged terms)",
                              their_contrastive, losses["contrastive"]))
        if epoch == 0:
            for index, name in enumerate(METERS[4:10]):
                rows.append(float_row(part, f"self-pair {name} (on the m images)", terms[name], self_terms[index]))
        rows += [
            float_row(part, "self-pair L_s sum (flip + 0.75x + 2x, m images)", sum(terms[k] for k in METERS[4:10:2]),
                      self_losses["self_pair_single"]),
            float_row(part, "self-pair L_co sum", sum(terms[k] for k in METERS[5:10:2]), self_losses["self_pair_coattention"]),
            float_row(part, "total, like for like (self-pairs of the m images)", terms["total"], like_total),
            float_row(part, "info: our actual total (self-pairs of all 4 images)", terms["total"], full_total, kind="info"),
        ]
        our_params = dict(ours.named_parameters())
        their_params = dict(theirs.named_parameters())
        scale = max(g.abs().max().item() for g in their_grads.values())
        worst, where = 0.0, ""
        for name, gradient in their_grads.items():
            if name.startswith("vgg.features."):  # the backbone copy in the official network: same names as ours
                our_name = "backbone." + name[len("vgg.features."):]
            else:
                our_name = mapping[name]
            our_grad = our_params[our_name].grad
            our_grad = torch.zeros_like(our_params[our_name]) if our_grad is None else our_grad
            if name == "extra_linear_e.weight":
                our_grad = our_grad.t()
            assert their_params[name].shape == gradient.shape
            diff = (gradient.double() - our_grad.double()).abs().max().item()
            diff = diff if math.isfinite(diff) and torch.isfinite(gradient).all() else math.inf
            if not diff <= worst:
                worst, where = diff, our_name
        relative = worst / max(scale, 1e-30)
        rows.append({"part": part, "quantity": f"gradients of the like-for-like total, all params (largest at {where})",
                     "official": f"max {scale:.4g}", "ours": "", "diff": f"{relative:.1e} rel",
                     "tolerance": f"{TOLERANCE:.0e} rel", "ok": relative <= TOLERANCE})
    return rows


# -- 3. test-time co-attention map ------------------------------------------------------------
def compare_test_map(lib, args) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        theirs, module, _, _ = build(lib, folder, localization_map="coattention", num_test_partners=3)
        ours = module.model
        theirs.eval(), ours.eval()
        size, c = args.map_image_size, 5
        images = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(3))  # m and 3 partners of c
        classes = torch.full((4,), c)
        our_raw = []
        original_aggregate = our_torch.aggregate_coattention_maps

        def record_ours(maps, present):
            our_raw.append(([m.clone() for m in maps], [p.clone() for p in present]))
            return original_aggregate(maps, present)
        with torch.no_grad(), patched(our_torch, "aggregate_coattention_maps", record_ours):
            located = ours.localize(images, classes)
            partners = [t[:1].clone() for t in ours.self_pair_images(images)]
        our_map = located.maps[0]
        if tuple(our_map.shape) != (32, 32):
            raise SystemExit(f"--map-image-size {size} gives {tuple(our_map.shape)} maps; the official test.py "
                             "resizes to a hard-coded 32x32 (L192, L196): use 256")
        # the official test on one item: image m, its class c, three partners of c, the self-pair partners
        label1 = torch.zeros(1, NUM_CLASSES)
        label1[0, c] = 1
        image_file = str(Path(folder) / "m.png")
        cv2.imwrite(image_file, np.zeros((32, 32, 3), np.uint8))  # map-sized: the final cv2.resize is the identity
        item = ([image_file], [image_file], images[:1], [[images[k:k + 1] for k in (1, 2, 3)]], partners, label1, label1)
        their_raw = []
        original_official = lib.test.aggregate

        def record_official(list_atten):
            their_raw.append([np.array(a, copy=True) for a in list_atten])
            return original_official(list_atten)
        save_dir = str(Path(folder) / "out") + "/"
        official_args = SimpleNamespace(save_dir=save_dir, num_classes=NUM_CLASSES)
        with contextlib.ExitStack() as stack:
            for name, value in (("get_model", lambda _args: nn.DataParallel(theirs)),
                                ("test_data_loader", lambda _args: [item]), ("aggregate", record_official)):
                stack.enter_context(patched(lib.test, name, value))
            stack.enter_context(cuda_is_identity())
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
            lib.test.validate(official_args)
        written = cv2.imread(f"{save_dir}m_{c}.png", cv2.IMREAD_GRAYSCALE)
    names = ("flip pair, image side", "flip pair, flipped side flipped back", "0.75x pair, partner side resized",
             "2x pair, partner side resized", "mean over 3 same-class partners, image side")
    rows = [exact_row("test map", "number of raw maps", len(their_raw[0]), len(our_raw[0][0]))]
    for index, name in enumerate(names):
        rows.append(float_row("test map", f"raw map {index + 1}: {name}", their_raw[0][index], our_raw[0][0][index][0]))
    rows.append(float_row("test map", f"fused map x255 (official uint8 PNG, class {c}, 32x32)",
                          torch.from_numpy(written.astype(np.float64)), 255 * our_map, tolerance=MAP_TOLERANCE))
    return rows


# -- 4. learning-rate groups --------------------------------------------------------------------
def lr_groups(lib, args) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as folder:
        official_args = SimpleNamespace(lr=0.001, weight_decay=0.0005, num_classes=NUM_CLASSES, att_dir=folder,
                                        epoch=15, resume="")
        with patched(lib.vgg, "model_zoo", SimpleNamespace(load_url=lambda *_a, **_k: {})), cuda_is_identity(), \
                contextlib.redirect_stdout(io.StringIO()):
            wrapped, optimizer = lib.train.get_model(official_args)
    network = getattr(wrapped, "module", wrapped)
    names = {id(p): n for n, p in network.named_parameters()}
    theirs = {names[id(p)]: round(g["lr"] / official_args.lr, 6) for g in optimizer.param_groups for p in g["params"]}
    for variant, overrides, kind in (("recipe", {}, "judged"),):
        module = get_model("mcis", **recipe_init_args(**overrides))
        mapping = name_map(network, module.model)
        configured = module.configure_optimizers()
        our_optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
        our_names = {id(p): n for n, p in module.model.named_parameters()}
        ours = {our_names[id(p)]: round(g["lr"] / module.hparams.lr, 6) for g in our_optimizer.param_groups
                for p in g["params"]}
        mapped = {mapping[n]: m for n, m in theirs.items()}
        for multiplier in sorted(set(mapped.values()) | set(ours.values())):
            official_set = {n for n, m in mapped.items() if m == multiplier}
            our_set = {n for n, m in ours.items() if m == multiplier}
            wrong = sorted(official_set ^ our_set)
            rows.append({"part": f"lr groups, {variant}", "quantity": f"params at lr x{multiplier:g}",
                         "official": str(len(official_set)), "ours": str(len(our_set)),
                         "diff": f"{len(wrong)} mismatched", "tolerance": "exact" if kind == "judged" else kind,
                         "ok": (not wrong) if kind == "judged" else None})
        moved: dict[tuple[float, float], list[str]] = {}
        for name, multiplier in mapped.items():
            if ours.get(name) != multiplier:
                moved.setdefault((multiplier, ours.get(name)), []).append(name)
        notes += [f"{variant}: {len(n)} params official x{a:g}, ours x{b:g}: {', '.join(n)}"
                  for (a, b), n in moved.items()]
        if kind == "judged":
            sgd = {k: our_optimizer.defaults[k] for k in OFFICIAL_SGD}
            their_sgd = {k: optimizer.defaults[k] for k in OFFICIAL_SGD}
            rows.append(exact_row(f"lr groups, {variant}", "SGD momentum / weight decay / nesterov",
                                  tuple(their_sgd.values()), tuple(sgd.values())))
    return rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of GuoleiSun/MCIS_wsss")
    parser.add_argument("--image-size", type=int, default=64, help="pair and training images (n: 3/4 of it)")
    parser.add_argument("--map-image-size", type=int, default=256, help="test-map images (32x32 maps: 256)")
    parser.add_argument("--official-commit", default=None,
                        help="the checkout's commit for the report (default: git rev-parse HEAD there)")
    args = parser.parse_args()
    missing = [name for name in REQUIRED if not (args.official / name).is_file()]
    if missing:
        print(f"error: {args.official} is not a checkout of GuoleiSun/MCIS_wsss (no {missing[0]} there)",
              file=sys.stderr)
        return 2
    commit = args.official_commit or subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip() or "unknown commit"
    torch.manual_seed(0)
    lib = load_official(args.official.resolve())
    print(f"GuoleiSun/MCIS_wsss @ {commit} at {args.official}; vgg16 (official D1 replaced by our backbone), "
          f"{NUM_CLASSES} classes, pair/training images {args.image_size} px, test map {args.map_image_size} px, "
          "float32, CPU")
    with tempfile.TemporaryDirectory() as folder:
        theirs, module, mapping, d1 = build(lib, folder)
    images = torch.rand(2, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        their_backbone, our_backbone = d1(official_input(images)), module.model.backbone(images)
    rows = [float_row("backbone", f"info: official D1 features vs our backbone, same conv weights ({len(mapping)} "
                      "tensors mapped)", their_backbone, our_backbone, kind="info")]
    rows += compare_pair(lib, theirs, module.model, args)
    rows += compare_training(lib, args)
    rows += compare_test_map(lib, args)
    lr_rows, notes = lr_groups(lib, args)
    rows += lr_rows
    return print_judged_rows(rows, "part", [f"lr group mismatch, {note}" for note in notes])


if __name__ == "__main__":
    sys.exit(main())
