"""Differentiable rendering: scene parameters, geometry, rotations, the rasterizer seam, its backends, the renderer."""
