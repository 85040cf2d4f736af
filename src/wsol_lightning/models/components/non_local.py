"""Embedded-Gaussian non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018).

For an input ``x`` of shape ``[B, C, H, W]`` and ``N = H * W`` positions (Wang et al., Eqs. 1, 3, 6):

    y_i = sum_j softmax_j(theta(x_i)^T phi(x_j)) g(x_j)          (embedded Gaussian, Eq. 3)
    z_i = W_z y_i + x_i                                           (residual, Eq. 6)

``theta``, ``phi``, ``g`` are 1x1 convolutions to ``C'`` channels and ``W_z`` a 1x1 convolution
back to ``C`` followed by batch normalization whose scale is initialized to zero (Wang et al.,
Sec. 4.1), so the block is exactly the identity at initialization and a pretrained network's
features are untouched when it is inserted. The ``N x N`` affinity, its softmax and the weighted
sum are computed in float32 even under autocast (an fp16 ``theta^T phi`` overflows easily).
"""

from __future__ import annotations

import torch
from torch import nn

from wsol_lightning.models.components.options import require


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block, identity at initialization.

    Args:
        in_channels: channels ``C`` of the input (and output).
        inter_channels: embedding channels ``C'`` of ``theta``, ``phi`` and ``g``; ``None`` uses
            ``C // 2`` (Wang et al., Sec. 3.3).
        use_batchnorm: ``W_z`` is a 1x1 conv followed by BN with zero-initialized scale (Wang et
            al., Sec. 4.1); ``False``: a 1x1 conv with zero-initialized weight and bias. Either way
            the block is the identity at initialization.
    """

    def __init__(self, in_channels: int, inter_channels: int | None = None, use_batchnorm: bool = True) -> None:
        super().__init__()
        require(in_channels >= 1, "in_channels", "positive", in_channels)
        inter_channels = max(1, in_channels // 2) if inter_channels is None else inter_channels
        require(inter_channels >= 1, "inter_channels", "positive", inter_channels)
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, inter_channels, 1)
        self.g = nn.Conv2d(in_channels, inter_channels, 1)
        project = nn.Conv2d(inter_channels, in_channels, 1)
        if use_batchnorm:
            norm = nn.BatchNorm2d(in_channels)
            nn.init.zeros_(norm.weight)
            nn.init.zeros_(norm.bias)
            self.output_projection = nn.Sequential(project, norm)
        else:
            nn.init.zeros_(project.weight)
            nn.init.zeros_(project.bias)
            self.output_projection = nn.Sequential(project)

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        """Row-softmaxed pairwise affinity ``softmax_j(theta_i^T phi_j)`` ``[B, N, N]`` in float32."""
        theta = self.theta(x).flatten(2).float()  # [B, C', N]
        phi = self.phi(x).flatten(2).float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        affinity = self.affinity(x)
        values = self.g(x).flatten(2).float()  # [B, C', N]
        with torch.autocast(device_type=x.device.type, enabled=False):
            aggregated = values @ affinity.transpose(1, 2)  # y_i = sum_j f_ij g_j -> [B, C', N]
        aggregated = aggregated.view(batch, self.inter_channels, height, width)
        return x + self.output_projection(aggregated).to(x.dtype)
