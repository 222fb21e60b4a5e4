import random

import pytest

torch = pytest.importorskip("torch")

from nascompress.spaces import SPACES, UserModelSpace  # noqa: E402
from nascompress.testing.space_conformance import check_space  # noqa: E402


def tiny_net(hidden=12):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, 10))


def test_user_model_space_builds_the_model_with_its_checkpoint(tmp_path):
    reference = tiny_net()
    checkpoint = tmp_path / "model.pt"
    torch.save(reference.state_dict(), checkpoint)
    space = SPACES.resolve("user-model")(model=f"{__name__}:tiny_net",
                                         checkpoint=str(checkpoint))
    check_space(space, input_shape=(1, 8, 8), num_classes=10)
    rng = random.Random(0)
    params = {k: d.sample(rng) for k, d in space.dimensions().items()}
    model = space.build_model(params, input_shape=(1, 8, 8), num_classes=10)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(model(x), reference(x))  # the pre-trained weights, not fresh ones
    assert space.teacher() == {"model": f"{__name__}:tiny_net", "model_kwargs": {},
                               "checkpoint": str(checkpoint)}
    assert not any(key.startswith("arch/") for key in space.dimensions())


def test_bad_options_are_named(tmp_path):
    with pytest.raises(ValueError, match="space.options.model"):
        UserModelSpace(model="no_colon_here")
    with pytest.raises(ValueError, match="space.options.checkpoint"):
        UserModelSpace(model=f"{__name__}:tiny_net", checkpoint=str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="prune/ratio"):
        UserModelSpace(model=f"{__name__}:tiny_net",
                       dimensions={"prune/ratio": {"type": "float", "low": 0, "high": 1.0}})


def test_image_cnn_passes_the_shipped_conformance_suite():
    check_space(SPACES.resolve("image-cnn")(), input_shape=(1, 8, 8), num_classes=10)


def small_cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1),
                                                torch.nn.ReLU())),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))


def test_an_elastic_user_model_space_passes_the_shipped_conformance_suite():
    space = UserModelSpace(model=f"{__name__}:small_cnn", elastic=True, input_shape=[1, 8, 8])
    # The inner Sequential is a block, and so is the one holding it.
    assert {k for k in space.dimensions() if k.startswith("arch/")} == {
        "arch/width_mult", "arch/3/depth", "arch/3.0/depth"}
    check_space(space, input_shape=(1, 8, 8), num_classes=10)
