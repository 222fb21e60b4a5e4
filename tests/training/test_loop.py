"""The built-in trainer's guards."""

import pytest

torch = pytest.importorskip("torch")


def test_strided_pointwise_convolutions_see_nchw_inputs_on_the_cpu_while_guarded():
    from torch import nn

    from nascompress.training.loop import nchw_strided_pointwise

    seen = []  # whether each convolution ran on an NCHW-contiguous input
    strided, plain = nn.Conv2d(4, 8, 1, stride=2), nn.Conv2d(4, 8, 1)
    for conv in (strided, plain):
        conv.register_forward_hook(lambda m, args, out: seen.append(args[0].is_contiguous()))
    model = nn.Sequential(strided)
    x = torch.randn(2, 4, 8, 8).to(memory_format=torch.channels_last)
    with nchw_strided_pointwise(model, "cpu"):
        model(x)
        plain(x)  # not a strided 1x1 (and not in the model): left as it is
    model(x)  # the guard is gone after the block
    with nchw_strided_pointwise(model, "cuda:0"):  # nothing is hooked for CUDA
        model(x)
    assert seen == [True, False, False, False]


def test_nchw_gives_nchw_strides_even_where_contiguous_says_yes():
    from nascompress.training.loop import nchw

    one_channel = torch.randn(2, 1, 8, 8).to(memory_format=torch.channels_last)
    assert one_channel.is_contiguous()  # and yet its strides are channels-last ones
    assert nchw(one_channel).stride() == (64, 64, 8, 1)
    assert torch.equal(nchw(one_channel), one_channel)
    plain = torch.randn(2, 4, 8, 8)
    assert nchw(plain) is plain
    assert nchw(plain.to(memory_format=torch.channels_last)).stride() == plain.stride()


def test_a_user_training_function_runs_under_the_same_guard():
    from torch import nn

    from nascompress.training.hooks import TrainingContext, run_training_function
    from nascompress.training.loop import DEFAULT_RECIPE
    from nascompress.training.recipe import select_precision

    seen = []
    model = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2))
    model[0].register_forward_hook(lambda m, args, out: seen.append(args[0].is_contiguous()))

    def train(ctx):
        ctx.model(torch.randn(2, 4, 8, 8).to(memory_format=torch.channels_last))

    context = TrainingContext(
        phase="train", model=model, train_loader=[], val_loader=[], device="cpu", epochs=1,
        lr=0.1, batch_size=2, seed=0, generator=torch.Generator(), recipe=DEFAULT_RECIPE,
        precision=select_precision("cpu", DEFAULT_RECIPE.amp), channels_last=False,
        distill_loss=None)
    run_training_function(train, context, field="training.function", path="m:train")
    train(context)  # outside the call, unguarded
    assert seen == [True, False]
