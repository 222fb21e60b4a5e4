"""The space registry (see :mod:`nascompress.registry`)."""

from nascompress.registry import Registry
from nascompress.spaces._base import SearchSpace

SPACES: Registry[SearchSpace] = Registry("spaces")
register_space = SPACES.register
