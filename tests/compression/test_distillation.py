import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from nascompress.compression import distillation_loss  # noqa: E402


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
