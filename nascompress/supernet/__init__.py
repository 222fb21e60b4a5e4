"""Weight sharing: elastic supernets, their training, and subnet extraction.

* :mod:`~nascompress.supernet._elastic` — what every elastic supernet shares (fake
  quantizer, sliced BatchNorm, channel permutation) and the contract they keep;
* :mod:`~nascompress.supernet.mobilenet` — the elastic ``mobilenet`` supernet
  (width, expansion, depth, kernel, squeeze-excite, bit-width) and ``extract``;
* :mod:`~nascompress.supernet.resnet` — the elastic ``resnet`` supernet of one block type
  (width and depth per stage, bit-width) and ``extract``;
* :mod:`~nascompress.supernet.bootstrap` — the elastic ``user-model`` supernet,
  bootstrapped from the user's pre-trained model (width over torch-pruning's channel
  groups, skippable blocks, bit-width) and ``extract``;
* :mod:`~nascompress.supernet.training` — sandwich-rule training with in-place
  distillation, a checkpoint per epoch and resume, BatchNorm recalibration, and the
  data-parallel path through Ray Train.

torch is imported by the submodules only; ray only by the Ray Train path.
"""
