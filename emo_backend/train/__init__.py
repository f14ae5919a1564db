"""Training: stage-1 Gaussian-blendshape fitting, its losses, density control, schedules and checkpoints."""
