"""What every parity script shares: copying an official network's tensors into ours, position by position,
and weights derived from a tensor's position alone (the golden fixtures store no weights)."""

from __future__ import annotations

import math

import torch


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
