"""Generator families behind one interface (see :mod:`.base`). Importing this package registers them."""

from .base import Generator, available_generators, create_generator, load_generator, register_generator

__all__ = ["Generator", "available_generators", "create_generator", "load_generator", "register_generator"]

# built-in families register themselves on import
from . import label_to_image, lesion_insertion  # noqa: E402, F401
from .diffusion import DiffusionGenerator  # noqa: E402, F401  (trainable: joint image + mask diffusion)
from .gan3d import GAN3DGenerator  # noqa: E402, F401  (trainable: label-conditioned 3D GAN)
