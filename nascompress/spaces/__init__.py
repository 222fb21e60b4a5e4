"""Search spaces: dimensions, the :class:`SearchSpace` contract and built-in spaces."""

from nascompress.spaces._base import Params, SearchSpace
from nascompress.spaces._dimensions import (
    Categorical,
    Dimension,
    Float,
    Int,
    dimension_from_dict,
)
from nascompress.spaces._registry import SPACES, register_space
from nascompress.spaces.image_cnn import ImageCNNSpace
from nascompress.spaces.mobilenet import MobileNetSpace
from nascompress.spaces.resnet import ResNetSpace
from nascompress.spaces.user_model import UserModelSpace

__all__ = [
    "SPACES",
    "Categorical",
    "Dimension",
    "Float",
    "ImageCNNSpace",
    "Int",
    "MobileNetSpace",
    "Params",
    "ResNetSpace",
    "SearchSpace",
    "UserModelSpace",
    "dimension_from_dict",
    "register_space",
]
