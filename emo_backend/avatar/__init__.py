"""The Gaussian avatar: neutral Gaussians, blendshape deltas, mesh binding, the bundle format."""
