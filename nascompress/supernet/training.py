"""Supernet training: sandwich rule, in-place distillation, checkpoints, Ray Train.

One step (sandwich rule, as in BigNAS / Once-for-All): the largest subnet learns from the
labels; the smallest and ``random_subnets`` random subnets learn from the largest's
logits of the same batch (in-place distillation, ``distillation_loss`` with
``kd_alpha``); their gradients are summed and one optimizer step is taken. Sampling is
seeded by the step number, so every data-parallel worker picks the same subnets.

Schedule: ``warmup_epochs`` train the largest network alone; then its channels are
ordered by importance (``sort_channels_``) and the optimizer restarts. With
``progressive=True`` the remaining epochs unlock the elastic dimensions in Once-for-All's
order (kernel, depth, expansion, width and squeeze-excite, bits; groups the supernet
has no key of are skipped), the later groups held at their largest value until their
turn, every group elastic in the last epoch at the latest; otherwise every dimension is
elastic at once.

A checkpoint (weights, optimizer, schedule, history) is written atomically after every
epoch to ``<dir>/checkpoint.pt``; :func:`train_supernet` resumes from it when the same
settings find one, and writes the finished weights to ``<dir>/supernet.pt``, the file
trials load (once per worker process, see :func:`load_supernet`).

With ``workers > 1`` the same loop runs data-parallel on a Ray Train ``TorchTrainer``:
every worker takes every ``workers``-th batch, gradients are averaged with
``torch.distributed.all_reduce`` (no DDP wrapper: the set of parameters a subnet uses
changes per forward, and every worker uses the same set); worker 0 writes the
checkpoints, into a folder the workers must share (one node, or a shared filesystem).

Where: ``device="auto"`` trains on the driver's GPU when torch sees one (one worker), or
gives every Ray Train worker a GPU when the cluster has one per worker; on CUDA the
steps run in the recipe's mixed precision (``amp``: bf16 autocast, or fp16 with a
``GradScaler``), as the built-in trainer's do. The CPU path is plain float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn

from nascompress.training.loop import nchw_strided_pointwise
from nascompress.training.recipe import AMP_MODES, check_prepare_device, select_prepare_device

CHECKPOINT_FILE = "checkpoint.pt"
SUPERNET_FILE = "supernet.pt"
FORMAT = 1
#: Once-for-All's order of unlocking, by the last part of the key (``mobilenet``'s and
#: ``resnet``'s names).
PROGRESSIVE_ORDER = (("kernel",), ("depth", "blocks"), ("expand",),
                     ("width_mult", "width", "se"), ("bits", "scheme"))


@dataclass(frozen=True)
class SupernetOptions:
    """How the supernet trains; recorded in ``run.json`` and in its checkpoint.

    Attributes:
        epochs: epochs in all (warm-up included).
        batch_size: training batch size (per worker).
        lr: peak learning rate (Adam, cosine over each phase's steps).
        random_subnets: random subnets per step besides the largest and smallest.
        kd_alpha: weight of the largest's soft labels in the other subnets' loss.
        kd_temperature: softmax temperature of that loss.
        warmup_epochs: epochs training the largest network alone before channels are
            sorted by importance.
        progressive: unlock the elastic dimensions in stages (progressive shrinking).
        workers: data-parallel workers; above 1 the loop runs on Ray Train.
        threads: torch intra-op threads per worker on the CPU.
        bn_batches: training batches that recalibrate BatchNorm for the per-epoch score.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (the evaluator's ``prepare_device``):
            see the module docstring.
        amp: mixed precision on CUDA, as the recipe's ``amp`` (the CPU ignores it).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    random_subnets: int = 2
    kd_alpha: float = 1.0
    kd_temperature: float = 1.0
    warmup_epochs: int = 1
    progressive: bool = False
    workers: int = 1
    threads: int = 1
    bn_batches: int = 8
    device: str = "auto"
    amp: str = "auto"

    def validate(self, prefix: str = "evaluator") -> None:
        for name in ("epochs", "batch_size", "workers", "threads", "bn_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{prefix}.{name} must be an integer >= 1, but got {value!r}")
        for name in ("random_subnets", "warmup_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{prefix}.{name} must be an integer >= 0, but got {value!r}")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"{prefix}.warmup_epochs must be < epochs ({self.epochs}), but "
                             f"got {self.warmup_epochs}")
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ValueError(f"{prefix}.lr must be a number > 0, but got {self.lr!r}")
        if not (isinstance(self.kd_alpha, int | float) and 0 <= self.kd_alpha <= 1):
            raise ValueError(f"{prefix}.kd_alpha must lie in [0, 1], but got {self.kd_alpha!r}")
        if not (isinstance(self.kd_temperature, int | float) and self.kd_temperature > 0):
            raise ValueError(f"{prefix}.kd_temperature must be > 0, but got "
                             f"{self.kd_temperature!r}")
        check_prepare_device(self.device, f"{prefix}.prepare_device")
        if self.amp not in AMP_MODES:
            raise ValueError(f"{prefix}.recipe.amp must be one of {AMP_MODES}, but got "
                             f"{self.amp!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Options a checkpoint may be resumed under with other values: where and with how many
#: workers it trains (and so in which arithmetic) do not change what it is a checkpoint
#: of; a search that lost its GPU resumes on the CPU. Leaving them out also keeps the
#: fingerprints of checkpoints written before ``device`` and ``amp`` existed.
_PLACEMENT = ("workers", "threads", "device", "amp")


def fingerprint(space, dataset, options: SupernetOptions, seed: int) -> str:
    """What a checkpoint must match to be resumed (see :data:`_PLACEMENT`)."""
    described = {"space": space.to_dict(), "dataset": dataset.describe(), "seed": seed,
                 "options": {k: v for k, v in options.to_dict().items()
                             if k not in _PLACEMENT}}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


# -- subnets ---------------------------------------------------------------------------


def unlocked_keys(choices: Mapping[str, Any], *, epoch: int, options: SupernetOptions
                  ) -> list[str]:
    """The elastic keys sampled at ``epoch`` (none during warm-up)."""
    if epoch < options.warmup_epochs:
        return []
    if not options.progressive:
        return list(choices)
    present = {key.rsplit("/", 1)[1] for key in choices}
    order = [group for group in PROGRESSIVE_ORDER if present & set(group)]
    # Stages share the epochs after warm-up equally. With fewer epochs than stages the
    # middle stages merge into their successors, so the last epoch is still the full
    # space and every group trains.
    span = options.epochs - options.warmup_epochs
    done = epoch - options.warmup_epochs
    last = len(order) - 1
    if span > last:
        stage = done * len(order) // span
    else:
        stage = last if span == 1 else done * last // (span - 1)
    parts = {p for group in order[:stage + 1] for p in group}
    return [key for key in choices if key.rsplit("/", 1)[1] in parts]


def step_subnets(net, *, step: int, seed: int, unlocked: list[str], count: int
                 ) -> list[dict[str, Any]]:
    """The sandwich of one step: largest, smallest, then ``count`` random subnets
    (over the ``unlocked`` keys; the others stay largest)."""
    largest = net.largest()
    if not unlocked:
        return [largest]
    smallest = {**largest, **{k: v for k, v in net.smallest().items() if k in unlocked}}
    rng = random.Random(seed * 1_000_003 + step)
    randoms = [{**largest, **{k: rng.choice(net.choices[k]) for k in unlocked}}
               for _ in range(count)]
    return [largest, smallest, *randoms]


# -- BatchNorm -------------------------------------------------------------------------


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader, *, batches: int, device: str = "cpu") -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches`` training batches.

    Inherited statistics mix every subnet the supernet trained; a subnet's own are the
    exact averages over the batches (cumulative average, ``momentum=None``). Returns the
    batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None
    model.train()
    used = 0
    for inputs, _ in loader:
        model(torch.as_tensor(inputs).to(device))
        used += 1
        if used >= batches:
            break
    for module, momentum in zip(norms, saved, strict=True):
        module.momentum = momentum
    model.eval()
    return used


# -- training --------------------------------------------------------------------------


@dataclass
class SupernetResult:
    """A trained supernet on disk and what its training recorded."""

    path: Path
    epochs: int
    seconds: float
    resumed_from: int | None
    history: list[dict[str, Any]]
    fingerprint: str

    def record(self, options: SupernetOptions) -> dict[str, Any]:
        return {"checkpoint": str(self.path), "fingerprint": self.fingerprint,
                "epochs": self.epochs, "train_s": self.seconds,
                "resumed_from_epoch": self.resumed_from, "options": options.to_dict(),
                "history": self.history}


def train_supernet(space, dataset, *, options: SupernetOptions, seed: int,
                   directory: str | os.PathLike, stream: TextIO | None = sys.stdout
                   ) -> SupernetResult:
    """Train (or resume, or reuse) the space's supernet; see the module docstring."""
    options.validate()
    # One worker trains here; Ray Train workers get their GPUs where the cluster has them.
    device = (select_prepare_device(options.device) if options.workers == 1
              else options.device)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = fingerprint(space, dataset, options, seed)
    final = directory / SUPERNET_FILE
    if final.exists():
        saved = torch.load(final, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") == key:
            if stream:
                print(f"supernet: reusing {final} (trained before)", file=stream, flush=True)
            return SupernetResult(final, saved["epochs"], 0.0, saved["epochs"],
                                  saved["history"], key)
    started = time.perf_counter()
    resumed = _checkpoint_epoch(directory, key)
    config = {"space": space, "dataset": dataset, "options": options, "seed": seed,
              "directory": str(directory), "fingerprint": key, "device": device}
    if options.workers > 1:
        _train_on_ray(config, stream=stream)
    else:
        train_loop(config, stream=stream)
    saved = torch.load(final, map_location="cpu", weights_only=True)
    return SupernetResult(final, saved["epochs"], time.perf_counter() - started, resumed,
                          saved["history"], key)


def _checkpoint_epoch(directory: Path, key: str) -> int | None:
    path = directory / CHECKPOINT_FILE
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return saved["epoch"] if saved.get("fingerprint") == key else None


def train_loop(config: Mapping[str, Any], *, stream: TextIO | None = sys.stdout,
               rank: int = 0, world: int = 1) -> None:
    """The training loop of one worker (all of it when ``world`` is 1)."""
    from nascompress.compression.distillation import distillation_loss
    from nascompress.training.loop import (
        autocast_context,
        make_optimizer,
        make_scheduler,
        to_device,
    )
    from nascompress.training.recipe import Recipe, select_precision

    space, dataset, options = config["space"], config["dataset"], config["options"]
    seed, key, device = config["seed"], config["fingerprint"], config["device"]
    directory = Path(config["directory"])
    torch.set_num_threads(options.threads)
    torch.manual_seed(seed)
    net = space.build_supernet(input_shape=dataset.input_shape,
                               num_classes=dataset.num_classes).to(device)
    precision = select_precision(device, options.amp)
    # fp16 needs a scaler (its range underflows small gradients); bf16 and float32 none.
    scaler = (torch.amp.GradScaler(str(device).split(":")[0]) if precision.scaler
              else None)
    recipe = Recipe()
    loader = dataset.loader("train", batch_size=options.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed), device=device)
    batches = _length(loader)
    # Every worker takes the same number of steps (all_reduce pairs them up): the last
    # batches that would leave some workers one step short are dropped.
    usable = batches // world * world if world > 1 else batches
    steps_per_epoch = max(1, usable // world)

    def fresh_optimizer(epochs: int):
        optimizer = make_optimizer(recipe, list(net.parameters()), options.lr)
        return optimizer, make_scheduler(recipe, optimizer, epochs=epochs,
                                         steps_per_epoch=steps_per_epoch)

    warm = options.warmup_epochs
    optimizer, scheduler = fresh_optimizer(warm if warm else options.epochs)
    start, history, sorted_ = 0, [], False
    path = directory / CHECKPOINT_FILE
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") == key:
            net.load_state_dict(saved["state"])
            start, history, sorted_ = saved["epoch"], saved["history"], saved["sorted"]
            if sorted_:
                optimizer, scheduler = fresh_optimizer(options.epochs - warm)
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None and saved.get("scheduler") is not None:
                scheduler.load_state_dict(saved["scheduler"])
            if scaler is not None and saved.get("scaler") is not None:
                scaler.load_state_dict(saved["scaler"])
            if stream and rank == 0:
                print(f"supernet: resuming after epoch {start}/{options.epochs}",
                      file=stream, flush=True)
    clock = time.perf_counter()
    done_here = 0
    # Guarded as the built-in trainer is (see nchw_strided_pointwise).
    with nchw_strided_pointwise(net, device):
        for epoch in range(start, options.epochs):
            if epoch >= warm and not sorted_:
                net.sort_channels_()  # the largest network trained: rank its channels
                optimizer, scheduler = fresh_optimizer(options.epochs - warm)
                sorted_ = True
            unlocked = unlocked_keys(net.choices, epoch=epoch, options=options)
            net.train()
            epoch_clock, losses, seen = time.perf_counter(), [], 0
            loader_iter = dataset.loader("train", batch_size=options.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed + epoch),
                                         device=device)
            for index, (inputs, labels) in enumerate(loader_iter):
                if index >= usable:
                    break
                if index % world != rank:
                    continue
                inputs, labels = to_device(inputs, labels, device)
                step = epoch * batches + index
                optimizer.zero_grad(set_to_none=True)
                soft = None
                total = torch.zeros((), device=device)  # summed on the device: no host sync
                for position, subnet in enumerate(step_subnets(
                        net, step=step, seed=seed, unlocked=unlocked,
                        count=options.random_subnets)):
                    net.set_active(subnet)
                    with autocast_context(device, precision):
                        logits = net(inputs)
                        if position == 0:
                            loss = nn.functional.cross_entropy(logits, labels)
                            soft = logits.detach()
                        else:
                            loss = distillation_loss(logits, soft, labels,
                                                     alpha=options.kd_alpha,
                                                     temperature=options.kd_temperature)
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                    total += loss.detach().float()
                if world > 1:
                    # Averaged while still scaled: every worker holds the same scale, and
                    # the scaler then finds an overflow on all of them or on none.
                    _average_gradients(net, world)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                losses.append(total)
                seen += len(labels)
            done_here += 1
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()  # the queued steps belong to this epoch's time
            seconds = time.perf_counter() - epoch_clock
            mean_loss = float(torch.stack(losses).mean()) if losses else 0.0
            entry: dict[str, Any] = {"epoch": epoch + 1, "loss": mean_loss,
                                     "seconds": seconds, "images": seen * world,
                                     "elastic": unlocked, "device": str(device).split(":")[0],
                                     "precision": precision.name}
            if rank == 0:
                entry.update(_score_extremes(net, dataset, options, device))
                history.append(entry)
                _save_atomic(path, {"format": FORMAT, "fingerprint": key, "epoch": epoch + 1,
                                    "sorted": sorted_, "state": net.state_dict(),
                                    "optimizer": optimizer.state_dict(),
                                    "scheduler": (scheduler.state_dict()
                                                  if scheduler is not None else None),
                                    "scaler": (scaler.state_dict()
                                               if scaler is not None else None),
                                    "history": history})
                if stream:
                    elapsed = time.perf_counter() - clock
                    left = options.epochs - epoch - 1
                    eta = f" | eta {elapsed / done_here * left:.0f}s" if left else ""
                    print(f"supernet epoch {epoch + 1}/{options.epochs} loss {entry['loss']:.4f}"
                          f" | largest {entry['val_accuracy_largest']:.4f} smallest "
                          f"{entry['val_accuracy_smallest']:.4f} | {seconds:.1f}s{eta}",
                          file=stream, flush=True)
    if rank == 0:
        _save_atomic(directory / SUPERNET_FILE,
                     {"format": FORMAT, "fingerprint": key, "epochs": options.epochs,
                      "state": net.state_dict(), "history": history})


def _length(loader) -> int:
    try:
        return len(loader)
    except TypeError:
        return sum(1 for _ in loader)


def _average_gradients(net: nn.Module, world: int) -> None:
    import torch.distributed as dist

    for parameter in net.parameters():
        if parameter.grad is None:  # unused by every subnet of this step, on every worker
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad)
        parameter.grad /= world


def _score_extremes(net, dataset, options: SupernetOptions, device: str) -> dict[str, float]:
    """Validation accuracy of the largest and smallest subnets, BatchNorm recalibrated
    on a fixed random sample of the train split (its first batches may hold one class:
    ``train_sample``)."""
    from nascompress.training.loop import accuracy

    scores = {}
    for name, subnet in (("largest", net.largest()), ("smallest", net.smallest())):
        model = net.extract(subnet).to(device)
        recalibrate_bn(model, dataset.loader("train", batch_size=options.batch_size,
                                             shuffle=True,
                                             generator=torch.Generator().manual_seed(0)),
                       batches=options.bn_batches, device=device)
        scores[f"val_accuracy_{name}"] = accuracy(model, dataset.loader("val"), device=device)
    net.train()
    return scores


def _save_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(dict(payload), tmp)
    os.replace(tmp, path)


def _train_on_ray(config: Mapping[str, Any], *, stream: TextIO | None) -> None:
    """Run :func:`train_loop` data-parallel on a Ray Train ``TorchTrainer``.

    In a Ray search Ray is already up (the controller joined the cluster before the
    supernet is prepared) and the workers are placed on its nodes; in a local search a
    local Ray is started the way the controller starts one (loopback, owner-only token)
    and stopped afterwards.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from nascompress.cluster import init_ray

    options: SupernetOptions = config["options"]
    started = init_ray(None)
    try:
        import ray

        have = ray.cluster_resources()
        # "auto": a GPU per worker where the cluster has one for each, else CPUs.
        use_gpu = (config["device"] == "cuda" or config["device"] == "auto"
                   and have.get("GPU", 0) >= options.workers)
        # Ray Train waits for resources forever: say now when the cluster cannot hold
        # the workers asked for.
        for resource, each, lower in (("CPU", options.threads, "evaluator.threads"),
                                      ("GPU", 1 if use_gpu else 0,
                                       "set evaluator.prepare_device to 'cpu'")):
            if each and have.get(resource, 0) < options.workers * each:
                raise ValueError(
                    f"evaluator.workers={options.workers} needs {options.workers * each:g} "
                    f"{resource}s for supernet training ({each:g} per worker), but the Ray "
                    f"cluster has {have.get(resource, 0):g}; lower evaluator.workers, "
                    f"{lower}, or add nodes")
        trainer = TorchTrainer(
            _ray_worker, train_loop_config={**config, "use_gpu": use_gpu},
            scaling_config=ScalingConfig(num_workers=options.workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": options.threads}),
            run_config=RunConfig(name="supernet",
                                 storage_path=str(Path(config["directory"]).resolve() / "ray")),
        )
        trainer.fit()
    finally:
        if started:
            ray.shutdown()
    if stream:
        print(f"supernet: trained on {options.workers} Ray Train workers", file=stream,
              flush=True)


def _ray_worker(config: Mapping[str, Any]) -> None:
    import ray.train

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = "cuda" if config["use_gpu"] else "cpu"
    if device == "cuda":
        from ray.train.torch import get_device

        device = str(get_device())
    train_loop({**config, "device": device}, stream=sys.stdout, rank=rank, world=world)


# -- loading, once per worker process --------------------------------------------------

_LOADED: dict[tuple[str, int], Any] = {}


def share_on_ray(path: str | os.PathLike) -> Any:
    """The checkpoint's bytes in Ray's object store, when Ray is up (else ``None``), so
    trials on nodes that cannot read the driver's run folder still get the supernet."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    return ray.put(Path(path).read_bytes())


def load_supernet(path: str | os.PathLike, space, dataset, *, shared_copy: Any = None) -> Any:
    """The trained supernet at ``path``, loaded once per process (keyed by path and
    modification time, so a retrained file is read again).

    A node that cannot see ``path`` (Ray workers on other machines, no shared
    filesystem) reads ``shared_copy`` instead: the object-store reference
    :func:`share_on_ray` made on the driver.
    """
    path = Path(path)
    if path.exists():
        key: tuple[str, Any] = (str(path.resolve()), path.stat().st_mtime_ns)
        source: Any = path
    elif shared_copy is not None:
        key, source = ("object store", str(path)), None
    else:
        raise FileNotFoundError(
            f"supernet checkpoint {path} is not readable on this node and no copy was "
            "shared through Ray; run the search with runner 'ray' (the driver shares it) "
            "or put the output directory on a filesystem every node mounts")
    if key not in _LOADED:
        if source is None:
            import io

            import ray

            source = io.BytesIO(ray.get(shared_copy))
        saved = torch.load(source, map_location="cpu", weights_only=True)
        net = space.build_supernet(input_shape=dataset.input_shape,
                                   num_classes=dataset.num_classes)
        net.load_state_dict(saved["state"])
        net.eval()
        _LOADED.clear()  # one supernet per process is all a search needs
        _LOADED[key] = net
    return _LOADED[key]


def loaded_count() -> int:
    """How many supernets this process holds (tests check the once-per-process load)."""
    return len(_LOADED)

