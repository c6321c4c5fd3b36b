"""ebmkit: energy-based generative models (CDRL, CoopFlow, NeRF-LEBM) of Zhu, UCLA 2024."""

__version__ = "0.1.0"
