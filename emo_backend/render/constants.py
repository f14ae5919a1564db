"""The splatting constants every backend shares — gsplat 1.5's values, in one place.

Read from gsplat's CUDA sources (ProjectionEWA3DGSFused.cu, RasterizeToPixels3DGSFwd.cu,
Utils.cuh persp_proj, Common.h) so the numba and torch renderers match its output.
"""

TILE_SIZE = 16              # pixels per tile side
EPS2D = 0.3                 # added to the 2D covariance diagonal ("classic", not antialiased)
NEAR_PLANE = 0.01           # camera z below this: culled
FAR_PLANE = 1e10            # camera z above this: culled
FOV_CLAMP_MARGIN = 0.3      # the Jacobian is evaluated at x/z clamped to the image +30% of tan(fov/2)
ALPHA_THRESHOLD = 1.0 / 255.0  # a Gaussian whose alpha at a pixel is below this is skipped
MAX_ALPHA = 0.999           # per-Gaussian alpha clamp (gsplat's kernel; the 3DGS paper used 0.99)
TRANSMITTANCE_STOP = 1e-4   # a pixel stops when T * (1 - alpha) <= this (that Gaussian excluded)
FIXED_EXTENT = 3.33         # sigma-extent of the bounding box without opacity information
