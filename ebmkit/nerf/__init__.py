"""NeRF-LEBM's geometry and distributions (thesis ch. 3): cameras, volume rendering, von Mises-Fisher."""
