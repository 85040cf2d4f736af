"""Parity with wsolevaluation (Choe et al., CVPR 2020): its networks loaded next to ours on the same weights.

The official repository is not part of this project: pass a checkout of clovaai/wsolevaluation
(the figures in BENCHMARKS.md are from @96f4b88) and this script imports its ``wsol`` package from
there. For each method and backbone it builds the official network and ours at random init, copies
the official tensors into ours in state-dict order (every shape is checked, a 1x1 convolution
may feed a linear layer; a mismatch stops the script and names both keys), and prints the largest absolute difference of the logits and of the
class maps of the labelled class (``return_cam=True`` there, ``localize`` here), min-max normalized
as both evaluations do before thresholding (wsolevaluation's CAM averages over channels where ours
sums, a constant factor), in eval mode.
Tolerance: 1e-4 absolute on float32 outputs of order 1-10 (the sums of a deep network in a different
operation order); the exit status is 1 when any row exceeds it.

    git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation   # on a machine with network
    PYTHONPATH=src python benchmarks/parity/wsolevaluation.py --official /tmp/wsolevaluation
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from common import copy_in_order, deterministic_weights

from wsol_lightning.cam import minmax_normalize
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of clovaai/wsolevaluation")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50", "inception_v3"])
    parser.add_argument("--num-classes", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--large-feature-map", action="store_true")
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
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
