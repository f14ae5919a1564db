"""EmoSplat backend: audio + emotion -> a Gaussian-splatted talking head.

Never imports bpy. Usable alone from the command line (`emosplat --help`).
"""

__version__ = "0.1.0"
