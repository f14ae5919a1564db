"""Motion networks: A2ET (audio + emotion -> expression and pose) and EGD (the stage-2 emotional residual)."""
