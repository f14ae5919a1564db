"""EmoSplat backend: audio + emotion -> a Gaussian-splatted talking head.

Never imports bpy. Usable alone from the command line (`emosplat --help`).
"""

__version__ = "0.1.0"

import os as _os

# torch's OpenMP threads spin while waiting for work: with numba's threads, Blender or other
# jobs on the same cores, every torch parallel region then stalls (measured: a CPU training
# step went from ~110 ms to ~900 ms on a loaded 2-core machine). Sleeping threads avoid that.
# Only effective before torch is first imported; a user's setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
