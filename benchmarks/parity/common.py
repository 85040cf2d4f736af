"""What every parity script shares: copying an official network's tensors into ours, position by position,
weights derived from a tensor's position alone (the golden fixtures store no weights), the shims around
the official code and the printed table of judged rows."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn


def copy_in_order(source: torch.nn.Module, target: torch.nn.Module) -> int:
    """Copy ``source``'s state dict into ``target``'s position by position; returns the tensor count."""
    theirs, ours = source.state_dict(), target.state_dict()
    if len(theirs) != len(ours):
        raise SystemExit(f"state dicts differ in length: official {len(theirs)}, ours {len(ours)}")
    copied = {}
    for (their_key, value), (our_key, own) in zip(theirs.items(), ours.items()):
        if value.shape != own.shape and value.squeeze().shape == own.squeeze().shape:
            value = value.reshape(own.shape)  # a 1x1 convolution read as a linear layer (or back)
        if value.shape != own.shape:
            raise SystemExit(f"shape mismatch: official {their_key} {tuple(value.shape)} vs ours {our_key} "
                             f"{tuple(own.shape)}")
        copied[our_key] = value
    target.load_state_dict(copied)
    return len(copied)


def deterministic_weights(module: torch.nn.Module) -> None:
    """Fill ``module``'s floating tensors from their position in its state dict alone.

    Tensor ``i`` is drawn from a generator seeded with ``i``: weights ``N(0, 2/fan_in)`` (He), BatchNorm
    scales ``0.5 + N(0, 0.05^2)`` (so that ResNet50's residual stream stays of order 1), biases and
    running means ``N(0, 0.1^2)``, running variances ``U[0.5, 1.5)``.
    Two networks whose state dicts align position by position (as the official and ours do) get the
    same weights, so golden outputs need no stored weights.
    """
    filled = {}
    for index, (key, value) in enumerate(module.state_dict().items()):
        generator = torch.Generator().manual_seed(index)
        if not value.is_floating_point():
            filled[key] = value
        elif key.endswith("running_var"):
            filled[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif value.dim() > 1:
            filled[key] = torch.randn(value.shape, generator=generator) * math.sqrt(2 / value[0].numel())
        elif key.endswith("weight"):
            filled[key] = 0.5 + 0.05 * torch.randn(value.shape, generator=generator)
        else:
            filled[key] = 0.1 * torch.randn(value.shape, generator=generator)
    module.load_state_dict(filled)


@contextlib.contextmanager
def cuda_is_identity() -> Iterator[None]:
    """The official code's ``.cuda()`` calls (tensors, ``DataParallel(model).cuda()``) keep everything on the CPU."""
    tensor_cuda, module_cuda = torch.Tensor.cuda, nn.Module.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda, nn.Module.cuda = tensor_cuda, module_cuda


def refuse_shadowed_packages(official: Path, names: Iterable[str]) -> None:
    """Stop when a top-level package the official code imports (``models``, ``utils``) is already imported
    from somewhere else: the official one would silently not be the one used."""
    for name in names:
        loaded = sys.modules.get(name)
        if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(official)):
            raise SystemExit(f"a module named {name!r} is already imported from {loaded.__file__}; "
                             "it shadows the official package")


def print_judged_rows(rows: Sequence[dict], first_column: str, notes: Iterable[str] = ()) -> int:
    """Print the markdown table (``first_column``, quantity, official, ours, max abs diff, tolerance, ok), the
    notes and a summary line; a row's ``ok`` is True / False (judged) or None (shown only). Returns the
    exit status: 1 when a judged row failed, else 0."""
    print(f"| {first_column} | quantity | official | ours | max abs diff | tolerance | ok |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for row in rows:
        ok = row["ok"]  # a NaN difference compares False, so it fails
        failed += ok is False
        mark = "-" if ok is None else ("yes" if ok else "**NO**")
        print(f"| {row[first_column]} | {row['quantity']} | {row['official']} | {row['ours']} | {row['diff']} | "
              f"{row['tolerance']} | {mark} |")
    for note in notes:
        print(f"- {note}")
    print(f"{failed} of {sum(r['ok'] is not None for r in rows)} judged rows outside the tolerance")
    return 1 if failed else 0
