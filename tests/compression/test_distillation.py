import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from nascompress.compression import distillation_loss  # noqa: E402
from nascompress.compression.distillation import (  # noqa: E402
    FeatureDistiller,
    default_feature_pairs,
)
from tests.compression._models import image_batch, image_cnn  # noqa: E402


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(5, 4, generator=g, requires_grad=True)
    teacher = 3 * torch.randn(5, 4, generator=g)
    targets = torch.tensor([0, 1, 2, 3, 0])
    return student, teacher, targets


def manual_kl(student, teacher, temperature):
    p = F.softmax(teacher / temperature, dim=1)
    log_q = F.log_softmax(student / temperature, dim=1)
    return (p * (p.log() - log_q)).sum(1).mean()


def test_alpha_zero_is_exactly_cross_entropy(logits):
    student, teacher, targets = logits
    loss = distillation_loss(student, teacher, targets, alpha=0.0, temperature=4.0)
    assert torch.equal(loss, F.cross_entropy(student, targets))


def test_identical_logits_give_zero_soft_loss(logits):
    student, _, _ = logits
    loss = distillation_loss(student, student.detach(), None, alpha=1.0, temperature=2.0)
    assert abs(float(loss.detach())) < 1e-6


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_soft_term_is_t_squared_kl(logits, temperature):
    student, teacher, targets = logits
    loss = distillation_loss(student, teacher, targets, alpha=1.0, temperature=temperature)
    expected = temperature**2 * manual_kl(student, teacher, temperature)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert float(loss.detach()) > 0


def test_mixed_alpha_blends_both_terms(logits):
    student, teacher, targets = logits
    loss = distillation_loss(student, teacher, targets, alpha=0.3, temperature=2.0)
    expected = 0.7 * F.cross_entropy(student, targets) + 0.3 * 4.0 * manual_kl(
        student, teacher, 2.0
    )
    assert torch.allclose(loss, expected, atol=1e-6)


def test_gradient_reaches_student_not_teacher(logits):
    student, teacher, targets = logits
    teacher = teacher.clone().requires_grad_(True)
    distillation_loss(student, teacher, targets, alpha=0.5, temperature=3.0).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    assert teacher.grad is None


def test_inference_mode_teacher_is_accepted(logits):
    student, teacher, targets = logits
    with torch.inference_mode():
        frozen = teacher * 1.0
    distillation_loss(student, frozen, targets, alpha=0.5, temperature=2.0).backward()
    assert student.grad is not None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": -0.1, "temperature": 1.0}, "alpha"),
        ({"alpha": 1.5, "temperature": 1.0}, "alpha"),
        ({"alpha": math.nan, "temperature": 1.0}, "alpha"),
        ({"alpha": 0.5, "temperature": 0.0}, "temperature"),
        ({"alpha": 0.5, "temperature": -2.0}, "temperature"),
        ({"alpha": 0.5, "temperature": math.inf}, "temperature"),
    ],
)
def test_bad_settings_raise(logits, kwargs, name):
    student, teacher, targets = logits
    with pytest.raises(ValueError, match=name):
        distillation_loss(student, teacher, targets, **kwargs)


def test_missing_targets_or_shape_mismatch_raise(logits):
    student, teacher, _ = logits
    with pytest.raises(ValueError, match="targets"):
        distillation_loss(student, teacher, None, alpha=0.5, temperature=1.0)
    with pytest.raises(ValueError, match="shape"):
        distillation_loss(student, teacher[:, :3], None, alpha=1.0, temperature=1.0)


# --- intermediate-feature distillation -------------------------------------------------


def frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


@pytest.fixture
def images():
    return image_batch(6, seed=3)


def run_both(student, teacher, inputs):
    student(inputs)
    with torch.no_grad():
        teacher(inputs)


def test_default_pairs_match_relative_depth():
    shallow, mid, deep = image_cnn(depth=1), image_cnn(depth=2), image_cnn(depth=3)
    assert default_feature_pairs(mid, deep) == [("2", "6"), ("6", "10")]
    assert default_feature_pairs(deep, mid) == [("2", "2"), ("6", "6"), ("10", "6")]
    assert default_feature_pairs(deep, shallow) == [("2", "2"), ("6", "2"), ("10", "2")]
    assert default_feature_pairs(mid, mid) == [("2", "2"), ("6", "6")]
    with pytest.raises(ValueError, match="ReLU"):
        default_feature_pairs(nn.Sequential(nn.Linear(2, 2)), mid)


def test_identical_copy_gives_zero_loss_and_other_student_positive(images):
    teacher = frozen(image_cnn(seed=0, width=8))
    twin = image_cnn(seed=0, width=8).eval()
    pairs = default_feature_pairs(twin, teacher)
    with FeatureDistiller(twin, teacher, pairs, example_input=images) as distiller:
        run_both(twin, teacher, images)
        assert float(distiller.loss().detach()) < 1e-10

    other = image_cnn(seed=1, width=8).eval()
    with FeatureDistiller(other, teacher, pairs, example_input=images) as distiller:
        run_both(other, teacher, images)
        assert float(distiller.loss().detach()) > 1e-3


@pytest.mark.parametrize("normalize", [False, True])
def test_gradients_reach_student_and_projections_not_teacher(images, normalize):
    teacher = frozen(image_cnn(seed=0, depth=3, width=16))
    student = image_cnn(seed=1, depth=2, width=8)
    distiller = FeatureDistiller(
        student,
        teacher,
        default_feature_pairs(student, teacher),
        example_input=images,
        normalize=normalize,
    )
    run_both(student, teacher, images)
    distiller.loss().backward()
    conv_grads = [student[i].weight.grad for i in (0, 4)]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in conv_grads)
    assert all(float(p.grad.abs().sum()) > 0 for p in distiller.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    # Only the projections belong to the distiller: it never owns the student or teacher.
    assert sum(1 for _ in distiller.parameters()) == 2 * len(distiller.pairs)
    assert all(k.startswith("projections.") for k in distiller.state_dict())


def test_remove_detaches_hooks(images):
    teacher = frozen(image_cnn(seed=0))
    student = image_cnn(seed=1)
    distiller = FeatureDistiller(
        student, teacher, default_feature_pairs(student, teacher), example_input=images
    )
    assert any(m._forward_hooks for m in student.modules())
    distiller.remove()
    distiller.remove()  # idempotent
    assert not any(m._forward_hooks for m in student.modules())
    assert not any(m._forward_hooks for m in teacher.modules())
    run_both(student, teacher, images)
    with pytest.raises(RuntimeError, match="forward"):
        distiller.loss()


def test_mismatched_channels_and_spatial_sizes(images):
    teacher = frozen(image_cnn(seed=0, depth=3, width=64))
    student = image_cnn(seed=1, depth=1, width=8)
    # Student 8 channels at 8x8 against teacher 64 channels at 4x4, and the other way round.
    pairs = [("2", "6"), ("2", "2")]
    distiller = FeatureDistiller(student, teacher, pairs, example_input=images)
    assert [p.in_channels for p in distiller.projections] == [8, 8]
    assert [p.out_channels for p in distiller.projections] == [64, 64]
    run_both(student, teacher, images)
    loss = distiller.loss()
    assert loss.ndim == 0 and torch.isfinite(loss) and float(loss.detach()) > 0


def test_flat_features_use_linear_projection(images):
    teacher = frozen(image_cnn(seed=0, depth=2, width=16))
    student = image_cnn(seed=1, depth=2, width=8)
    distiller = FeatureDistiller(student, teacher, [("8", "8")], example_input=images)
    assert isinstance(distiller.projections[0], nn.Linear)
    assert distiller.projections[0].in_features == 32
    assert distiller.projections[0].out_features == 64
    run_both(student, teacher, images)
    assert float(distiller.loss().detach()) > 0


def test_feature_loss_decreases_in_training(images):
    teacher = frozen(image_cnn(seed=0, depth=2, width=32))
    student = image_cnn(seed=1, depth=2, width=8)
    distiller = FeatureDistiller(
        student, teacher, default_feature_pairs(student, teacher), example_input=images
    )
    optimizer = torch.optim.Adam([*student.parameters(), *distiller.parameters()], lr=1e-2)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        run_both(student, teacher, images)
        loss = distiller.loss()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    distiller.remove()
    assert losses[-1] < 0.5 * losses[0]


def test_construction_leaves_batchnorm_statistics_and_modes_alone():
    teacher = frozen(image_cnn(seed=0))
    student = image_cnn(seed=1).train()
    before = student[1].running_mean.clone()
    one = torch.randn(1, 1, 8, 8)  # a batch of one would fail in training mode
    FeatureDistiller(student, teacher, [("2", "2")], example_input=one).remove()
    assert torch.equal(student[1].running_mean, before)
    assert student.training and student[1].training and not teacher.training


def test_inference_mode_teacher_features_are_accepted(images):
    teacher = frozen(image_cnn(seed=0))
    student = image_cnn(seed=1)
    distiller = FeatureDistiller(student, teacher, [("6", "6")], example_input=images)
    student(images)
    with torch.inference_mode():
        teacher(images)
    distiller.loss().backward()
    assert student[4].weight.grad is not None


def test_hooked_output_is_copied_before_later_in_place_ops(images):
    # BatchNorm output is modified in place by ReLU(inplace=True) right after it.
    teacher = frozen(image_cnn(seed=0))
    twin = image_cnn(seed=0).eval()
    distiller = FeatureDistiller(twin, teacher, [("1", "1")], example_input=images)
    run_both(twin, teacher, images)
    captured = distiller._teacher_features["1"]
    assert float(captured.min()) < 0  # pre-ReLU values survived
    assert float(distiller.loss().detach()) < 1e-10


def test_unknown_names_and_bad_pairs_raise(images):
    teacher, student = frozen(image_cnn(seed=0)), image_cnn(seed=1)
    with pytest.raises(ValueError, match=r"valid names are \['0', '1'"):
        FeatureDistiller(student, teacher, [("nope", "2")], example_input=images)
    with pytest.raises(ValueError, match="teacher modules"):
        FeatureDistiller(student, teacher, [("2", "99")], example_input=images)
    with pytest.raises(ValueError, match="pairs"):
        FeatureDistiller(student, teacher, [], example_input=images)
    with pytest.raises(TypeError, match="pair"):
        FeatureDistiller(student, teacher, ["2"], example_input=images)
    with pytest.raises(ValueError, match="shapes"):
        FeatureDistiller(student, teacher, [("2", "8")], example_input=images)
    # A failed construction leaves no hooks behind.
    assert not any(m._forward_hooks for m in student.modules())


def test_structure_change_after_construction_is_reported(images):
    from nascompress.compression import prune_channels

    teacher, student = frozen(image_cnn(seed=0)), image_cnn(seed=1)
    distiller = FeatureDistiller(student, teacher, [("2", "2")], example_input=images)
    prune_channels(student, images, ratio=0.5)
    run_both(student, teacher, images)
    with pytest.raises(ValueError, match="rebuild"):
        distiller.loss()
