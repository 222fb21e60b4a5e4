"""Helpers shared by the supernet tests."""

import random

import torch


def with_batchnorm_statistics(net, seed=0):
    """``net`` in eval mode with non-trivial BatchNorm statistics and affine parameters
    (fresh ones are 0 and 1, which would hide a wrongly sliced channel)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(generator=gen)
    return net.eval()


def random_params(space, seed):
    """One random point of ``space`` (every dimension)."""
    rng = random.Random(seed)
    return {key: dim.sample(rng) for key, dim in space.dimensions().items()}
