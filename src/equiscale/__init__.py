"""equiscale: symmetry-aware deep learning for science, from quantum to continuum scales.

One symmetry core (``groups``, ``o3``) and equivariant layers built on it.
"""
from equiscale import groups, o3

__version__ = "0.1.0"
__all__ = ["groups", "o3", "__version__"]
