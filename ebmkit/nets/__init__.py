"""Networks: the CDRL EBM and initializer (thesis ch. 5) and their 2-D MLP analogues. No training logic."""

import torch.nn as nn

from .ebm_resnet import EBMResNet
from .embedding import NoiseLevelEmbedding, logsnr_to_unit, sinusoidal_embedding
from .mlp import EBMMLP, InitMLP
from .unet import UNet
from .point_flow import PointFlow
from .flowpp import FlowPP


def count_parameters(module: nn.Module) -> int:
    """Number of trainable and frozen parameter entries (a spectral-norm weight counts once)."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["EBMResNet", "UNet", "EBMMLP", "InitMLP", "NoiseLevelEmbedding", "logsnr_to_unit",
           "sinusoidal_embedding", "count_parameters", "FlowPP", "PointFlow"]
