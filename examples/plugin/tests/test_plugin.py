"""The plug-in's own tests: the shipped conformance suite, plus a real tiny search."""

from nascompress_example.data import load_blobs
from nascompress_example.space import MLPSpace

from nascompress.testing.space_conformance import SpaceConformance


class TestMLPSpace(SpaceConformance):
    input_shape = (1, 4, 4)
    num_classes = 4

    def make_space(self):
        return MLPSpace()


def test_blobs_are_split_and_shaped():
    data = load_blobs(samples=400)
    assert data.input_shape == (1, 4, 4) and data.num_classes == 4
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 400
