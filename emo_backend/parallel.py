"""numba's parallel kernels share one configuration: the threading layer and one lock.

numba's default "omp" layer binds to the system's libgomp next to torch's own copy, whose threads
spin-wait: with Blender or anything else on the same cores, every parallel region then stalls for
tens of ms (measured: 20k Gaussians at 256^2 went from ~20 ms to ~150 ms on a loaded 2-core
machine). The "workqueue" layer sleeps instead. It must not be entered from two threads at once:
every parallel kernel call takes PARALLEL_LOCK. A user's NUMBA_THREADING_LAYER wins; a layer
already started by other code stays. Import this module before the first parallel kernel runs
(every module with one imports it).
"""

from __future__ import annotations

import os
import threading

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
PARALLEL_LOCK = threading.RLock()


def numba_threads() -> int:
    return numba.get_num_threads()


def threading_layer() -> str:
    """The numba threading layer in use (after the first parallel call), e.g. "workqueue"."""
    try:
        return numba.threading_layer()
    except ValueError:  # not started yet
        return str(numba.config.THREADING_LAYER)
