"""Initialize a network from another run's weights (I2C's second stage fine-tunes a trained CAM model).

:func:`load_matching_weights` copies every tensor of a file whose name and shape match a parameter
or buffer of the network and reports each of the network's tensors: loaded, kept (its shape differs
from the file's) or new (not in the file); tensors of the file the network does not have are
listed as unused.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from wsol_lightning.errors import CheckpointError

#: Prefix of the network's tensors in a LightningModule's ``state_dict`` (``WSOLModule.model``).
MODULE_PREFIX = "model."


class WeightTransfer(NamedTuple):
    """What :func:`load_matching_weights` did, tensor by tensor."""

    path: Path
    loaded: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # name, network shape, file shape
    new: list[str]
    unused: list[str]

    def report(self) -> str:
        """One line per tensor, after a summary line."""
        lines = [
            f"init_from {self.path}: {len(self.loaded)} tensors loaded, {len(self.mismatched)} kept (shape differs), "
            f"{len(self.new)} new (not in the file), {len(self.unused)} of the file unused"
        ]
        lines += [f"  loaded    {name}" for name in self.loaded]
        lines += [f"  kept      {name}: network {list(ours)}, file {list(theirs)}" for name, ours, theirs in self.mismatched]
        lines += [f"  new       {name}" for name in self.new]
        lines += [f"  unused    {name}" for name in self.unused]
        return "\n".join(lines)


def read_network_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The network's tensors in ``path``: a Lightning checkpoint (its ``state_dict``, ``model.`` stripped) or a state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"init_from: {path} is not a file (folder {path.parent.resolve()}); "
                              "give a Lightning checkpoint (.ckpt) or a saved state dict (.pt)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise CheckpointError(f"init_from: cannot read {path} as a torch file ({type(error).__name__}: {error})") from error
    state = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"init_from: {path} holds neither a Lightning checkpoint nor a state dict of tensors")
    if any(name.startswith(MODULE_PREFIX) for name in state):
        state = {name.removeprefix(MODULE_PREFIX): t for name, t in state.items() if name.startswith(MODULE_PREFIX)}
    return state


@torch.no_grad()
def load_matching_weights(network: nn.Module, path: str | Path) -> WeightTransfer:
    """Copy the tensors of ``path`` whose name and shape match ``network``'s; raise if none match."""
    state = read_network_state(path)
    ours = network.state_dict()
    loaded, mismatched, new = [], [], []
    for name, tensor in ours.items():
        if name not in state:
            new.append(name)
        elif state[name].shape != tensor.shape:
            mismatched.append((name, tuple(tensor.shape), tuple(state[name].shape)))
        else:
            loaded.append(name)
    if not loaded:
        raise CheckpointError(
            f"init_from: no tensor of {path} matches the network by name and shape "
            f"(file: {', '.join(list(state)[:3])}...; network: {', '.join(list(ours)[:3])}...)"
        )
    network.load_state_dict({name: state[name] for name in loaded}, strict=False)
    unused = [name for name in state if name not in ours]
    return WeightTransfer(Path(path), loaded, mismatched, new, unused)
