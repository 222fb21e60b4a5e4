"""The weight-sharing evaluator: train one supernet, score subnets with inherited weights."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascompress.evaluators._base import Prepared, no_report
from nascompress.evaluators._registry import register_evaluator
from nascompress.evaluators.compress_train import (
    CALIBRATION_SAMPLES,
    CompressTrainEvaluator,
    _positive_int,
    training_device,
)

if TYPE_CHECKING:
    from nascompress.evaluators._base import ReportFn, TrialContext

SUPERNET_DIR = "supernet"


@register_evaluator("supernet")
class SupernetEvaluator(CompressTrainEvaluator):
    """Weight sharing: one supernet trained per search, every trial a subnet of it.

    Chosen with ``evaluator: {name: supernet, options: {...}}`` (multi-trial
    ``compress-train`` stays the default). The space must support weight sharing
    (:meth:`~nascompress.spaces.SearchSpace.build_supernet`; built in: ``mobilenet``,
    ``resnet`` with a single ``arch/block``, and ``user-model`` with ``elastic: true``).

    * :meth:`prepare` trains the supernet once on the driver (or resumes it from its
      last epoch checkpoint, or reuses a finished one) under ``<run>/supernet/`` (see
      :mod:`nascompress.supernet.training`); ``run.json`` records it as ``supernet``;
      trials get the checkpoint's path, not the weights.
    * A search trial (``context.stage == "search"``) loads the supernet once per worker
      process, extracts the subnet of its ``arch/*`` params as a real model, recalibrates
      BatchNorm on ``bn_batches`` training batches, applies the compression plan's other
      steps *without fine-tuning* (low-rank, pruning, sparsity and activation ranges,
      post-training; BatchNorm recalibrated again after them), quantizes the weights at
      ``quant/bits`` / ``quant/scheme`` with the plan's quantizer (the one the supernet
      trained with, so a subnet's bits are shared knobs, not post-training
      quantization), scores it on the validation split, writes the artifact and measures
      latency exactly like ``compress-train``. ``metrics["accuracy_source"]`` is
      ``"inherited"``; with accuracy as the score, ``metrics["chance_accuracy"]`` and
      ``metrics["val_samples"]`` record what guessing scores on the validation split
      (for :meth:`finalists`). ``distill/*`` knobs are ignored (no training happens). Under Ray
      the checkpoint's bytes are also put in the object store (``shared["supernet_copy"]``)
      for worker nodes that cannot read the driver's run folder.
    * Finalists (:meth:`finalists`): after the budget the ``finalists`` search trials
      that cover the most hypervolume (chosen greedily, none at chance accuracy while
      others are left) are run again with
      ``context.stage == "final"``: extracted, compressed as planned, fine-tuned
      ``finetune_epochs`` with quantization-aware training and distillation from the
      largest subnet (``finetune_alpha``), quantized, scored, written and measured;
      ``accuracy_source`` is ``"fine-tuned"``, ``accuracy_before_finetune`` the
      extracted, compressed subnet's float accuracy, and the runner adds the search
      trial's number (``finalist_of``) and objectives (``search_objectives``). The
      final front is taken from them alone.

    Args:
        epochs: supernet training epochs (warm-up included).
        warmup_epochs: epochs training the largest subnet alone before channels are
            sorted by importance.
        random_subnets: random subnets per step besides the largest and the smallest.
        kd_alpha / kd_temperature: in-place distillation of the other subnets from the
            largest.
        progressive: progressive shrinking (unlock kernel, depth, expansion, width, bits
            in turn; the ones a space lacks are skipped).
        workers: data-parallel workers for supernet training; above 1 it runs on Ray
            Train.
        bn_batches: how many training batches (of ``batch_size`` images) recalibrate a
            subnet's BatchNorm; on the CPU they are read in smaller batches (see
            :func:`~nascompress.data.eval_batch_size`), the same images.
        finalists: how many points to fine-tune after the search (0: none).
        finetune_epochs / finetune_lr: the finalists' fine-tune. The learning rate is
            ten times the 5e-4 it was first given: a finalist starts from inherited
            weights that the plan's pruning, low-rank and bit-width have just damaged,
            and recovers more at a rate closer to training's (``bench/supernet/
            finetune_recipe.py``, 5 epochs, 29 picks of six recorded searches: 5e-3
            better than 5e-4 on 28, by a median 0.049 accuracy; the one worse was at
            chance either way; 1e-2 better again by 0.009, not yet checked on other
            searches).
        finetune_alpha: weight of the largest subnet's soft labels while fine-tuning.
        batch_size, lr, importance, threads, latency, latency_runtime, recipe,
            prepare_device: as for ``compress-train`` (``lr`` is the supernet's;
            ``recipe`` the fine-tune's, and its ``amp`` the supernet's mixed precision
            on CUDA; ``prepare_device`` where the supernet trains: the driver's GPU
            when it has one, or with ``workers`` above 1 a GPU per Ray Train worker
            where the cluster has one for each).
    """

    name = "supernet"

    def __init__(
        self,
        *,
        epochs: int = 10,
        warmup_epochs: int = 1,
        random_subnets: int = 2,
        kd_alpha: float = 1.0,
        kd_temperature: float = 1.0,
        progressive: bool = False,
        workers: int = 1,
        bn_batches: int = 8,
        finalists: int = 3,
        finetune_epochs: int = 3,
        finetune_lr: float = 5e-3,
        finetune_alpha: float = 0.5,
        **options: Any,
    ) -> None:
        # batch_size, lr, importance, threads, latency, latency_runtime and recipe are
        # compress-train's own options, with its defaults.
        super().__init__(epochs=epochs, finetune_epochs=finetune_epochs,
                         finetune_lr=finetune_lr, **options)
        self.warmup_epochs = warmup_epochs
        self.random_subnets = random_subnets
        self.kd_alpha = kd_alpha
        self.kd_temperature = kd_temperature
        self.progressive = progressive
        self.workers = workers
        self.bn_batches = bn_batches
        self.finalists_count = finalists
        self.finetune_alpha = finetune_alpha

    def _options(self):
        from nascompress.supernet.training import SupernetOptions

        return SupernetOptions(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            random_subnets=self.random_subnets, kd_alpha=self.kd_alpha,
            kd_temperature=self.kd_temperature, warmup_epochs=self.warmup_epochs,
            progressive=bool(self.progressive), workers=self.workers, threads=self.threads,
            bn_batches=self.bn_batches, device=self.prepare_device, amp=self.recipe.amp)

    def validate(self) -> None:
        super().validate()
        self._options().validate()
        _positive_int("finalists", self.finalists_count, allow_zero=True)
        if (isinstance(self.finetune_alpha, bool)
                or not isinstance(self.finetune_alpha, int | float)
                or not 0 <= self.finetune_alpha <= 1):
            raise ValueError(f"evaluator.finetune_alpha must lie in [0, 1], but got "
                             f"{self.finetune_alpha!r}")
        if not isinstance(self.progressive, bool):
            raise ValueError(f"evaluator.progressive must be true or false, but got "
                             f"{self.progressive!r}")

    def check_space(self, space) -> str | None:
        problem = space.weight_sharing_problem()
        if space.elastic_dimensions():
            return problem
        fix = problem or "use evaluator 'compress-train'"
        return (f"evaluator.name: 'supernet' needs a space that supports weight sharing; "
                f"space {space.name!r} does not support weight sharing yet ({fix})")

    def intermediate_metrics(self) -> dict[str, str]:
        # A trial takes seconds and reports nothing along the way: no early stopping.
        return {}

    def settings(self) -> dict[str, Any]:
        settings = super().settings()
        for key in ("teacher_epochs", "teacher", "metric"):
            settings.pop(key, None)
        # The options' device and amp are prepare_device and recipe.amp, recorded above.
        options = {k: v for k, v in self._options().to_dict().items()
                   if k not in ("device", "amp")}
        return {**settings, **options, "finalists": self.finalists_count,
                "finetune_alpha": self.finetune_alpha}

    # -- once per search ---------------------------------------------------------------

    def check_environment(self) -> str | None:
        # Ray Train workers find their GPUs on the cluster, which says when it lacks them.
        return super().check_environment() if self.workers == 1 else None

    def prepare(self, *, space, dataset, seed: int, workdir: Path) -> Prepared:
        """Train, resume or reuse the supernet under ``<workdir>/supernet/``."""
        from nascompress.supernet.training import share_on_ray, train_supernet

        self.validate()
        problem = self.check_space(space)
        if problem:
            raise ValueError(problem)
        result = train_supernet(space, dataset, options=self._options(), seed=seed,
                                directory=Path(workdir) / SUPERNET_DIR)
        record = result.record(self._options())
        record["checkpoint"] = str(Path(SUPERNET_DIR) / result.path.name)
        last = result.history[-1] if result.history else {}
        how = ("reused" if result.seconds == 0.0 else
               f"resumed after epoch {result.resumed_from}" if result.resumed_from
               else "trained")
        shared: dict[str, Any] = {"supernet_checkpoint": str(result.path.resolve())}
        if self._score_name() == "accuracy":  # one pass over the labels, not one per trial
            shared["chance_accuracy"], shared["val_samples"] = chance_accuracy(dataset)
        copy = share_on_ray(result.path)  # for nodes without the driver's run folder
        if copy is not None:
            shared["supernet_copy"] = copy
        return Prepared(
            shared=shared,
            record={"supernet": record},
            summary=(f"supernet {how}: {result.epochs} epochs in {result.seconds:.1f} s; "
                     f"val accuracy largest {last.get('val_accuracy_largest', float('nan')):.4f}"
                     f" smallest {last.get('val_accuracy_smallest', float('nan')):.4f}"),
        )

    # -- finalists -----------------------------------------------------------------------

    def finalists(self, records: Sequence[Mapping[str, Any]], *, objectives,
                  constraints=()) -> list[Mapping[str, Any]]:
        """The ``finalists`` search trials that together cover the most of the inherited
        front: chosen greedily by hypervolume contribution (feasible COMPLETE trials,
        one per distinct candidate) on scaled axes (:func:`finalist_axes`).

        Hypervolume, not crowding: crowding distance ranks a front's two ends first, and
        one end is the smallest model, often at chance accuracy; a point's hypervolume
        contribution is what the final front loses without it. Scaled axes, not raw
        units: in raw bytes and milliseconds the largest models' differences dominate and
        a model twice as small counts for little at the small end. On six recorded
        searches (``bench/supernet/finalists.py``: every inherited front point
        fine-tuned, each rule's picks scored on the fine-tuned numbers) this gave a
        larger final front than raw units on four, the same on one, a slightly smaller
        one on one.

        Candidates whose inherited accuracy is indistinguishable from chance
        (:func:`at_chance`) are chosen only when fewer than ``finalists`` others are left:
        a small one adds hypervolume on these axes, but in those six searches the 17
        front points at chance reached at most 0.34 after fine-tuning (median 0.14), so
        such a finalist is a fine-tune spent on a model nobody ships.
        """
        if self.finalists_count == 0:
            return []
        pool = distinct_candidates(records, objectives, constraints)
        score = self._score_name()
        vectors = finalist_axes(pool, objectives, score=score)
        reference = [1.1] * len(objectives)
        above = [i for i, record in enumerate(pool) if not at_chance(record, score)]
        chosen = greedy_hypervolume(vectors, reference, self.finalists_count, among=above)
        # Only when too few are above chance: fill up with the rest, the same way.
        chosen = greedy_hypervolume(vectors, reference, self.finalists_count, chosen=chosen)
        return [pool[i] for i in chosen]

    # -- per trial -------------------------------------------------------------------

    def evaluate(self, params, *, space, dataset, context: TrialContext,
                 report: ReportFn = no_report) -> dict[str, Any]:
        from nascompress.latency.client import current

        gate = current()
        with gate.training():
            return self._evaluate_subnet(params, space=space, dataset=dataset,
                                         context=context, gate=gate)

    def _evaluate_subnet(self, params, *, space, dataset, context, gate) -> dict[str, Any]:
        import torch

        from nascompress.compression.plan import FLOAT_BITS, CompressionPlan
        from nascompress.data import eval_batch_size, take, train_sample
        from nascompress.supernet.training import load_supernet, recalibrate_bn
        from nascompress.training import Distillation, seed_everything

        self.validate()
        final = context.stage == "final"
        torch.set_num_threads(self.threads)
        generator = seed_everything(context.seed)
        timings: dict[str, float] = {}
        metrics: dict[str, Any] = {}
        clock = time.perf_counter()
        net = load_supernet(context.shared["supernet_checkpoint"], space, dataset,
                            shared_copy=context.shared.get("supernet_copy"))
        timings["load_s"] = time.perf_counter() - clock

        clock = time.perf_counter()
        device = training_device(context.device) if final else "cpu"
        calibration, calibration_labels = train_sample(dataset, CALIBRATION_SAMPLES)
        val_example = take(dataset.loader("val", batch_size=1), 1)[0]
        plan = CompressionPlan.from_params(params, importance=self.importance)

        # BatchNorm sees bn_batches x batch_size training images, in batches no larger
        # than an evaluation batch: the same statistics, and on the CPU a smaller batch
        # stays in the cache (1.6x faster for the largest 28x28 MobileNets).
        bn_batch = min(self.batch_size, eval_batch_size(tuple(dataset.input_shape)))
        bn_batches = math.ceil(self.bn_batches * self.batch_size / bn_batch)

        def bn_loader():
            return dataset.loader("train", batch_size=bn_batch, shuffle=True,
                                  generator=generator)

        model = net.extract(params)
        recalibrate_bn(model, bn_loader(), batches=bn_batches)
        lowrank, pruning = plan.apply_structure_(
            model, calibration[:2], calibration=(calibration, calibration_labels))
        if lowrank is not None:
            metrics["lowrank_layers"] = len(lowrank.layers)
        if lowrank is not None or plan.prune_ratio > 0:
            recalibrate_bn(model, bn_loader(), batches=bn_batches)
        layer_bits = plan.layer_bits(model)
        score_name = self._score_name()
        if final:
            metrics[f"{score_name}_before_finetune"] = self._score(
                model, dataset.loader("val"), "cpu")
        sparse = plan.prepare_finetune_(model, layer_bits, calibration=calibration)
        if sparse is not None:
            metrics["sparsity_requested"] = sparse.sparsity
        if final:
            teacher = _largest(net, bn_batches, bn_loader).to(device)
            distill = Distillation(alpha=self.finetune_alpha, teacher=teacher.eval(),
                                   label_smoothing=self.recipe.label_smoothing)
            model = model.to(device)
            stats = self._train_phase("finetune", model, dataset=dataset, device=device,
                                      epochs=self.finetune_epochs, lr=self.finetune_lr,
                                      generator=generator, seed=context.seed,
                                      distill=distill, on_batch_end=gate.checkpoint)
            metrics["finetune_precision"] = stats.precision
            model = model.cpu()
        elif sparse is not None or plan.quantizes or plan.activation_bits < FLOAT_BITS:
            # BatchNorm statistics of the model as it ships (fake-quantized weights and
            # activations, sparse weights); a float subnet's are already recalibrated.
            recalibrate_bn(model, bn_loader(), batches=bn_batches)
        achieved, quantized = plan.finalize_(model, layer_bits)
        if achieved is not None:
            metrics["sparsity"] = sum(achieved.values()) / max(1, len(achieved))
        timings["finetune_s" if final else "extract_s"] = time.perf_counter() - clock
        gate.checkpoint()

        score = self._score(model, dataset.loader("val"), "cpu")
        for key in ("chance_accuracy", "val_samples"):
            if key in context.shared:
                metrics[key] = context.shared[key]
        result = self._ship(model, params, space=space, dataset=dataset, context=context,
                            plan=plan, layer_bits=layer_bits, quantized=quantized,
                            val_example=val_example, calibration=calibration, gate=gate,
                            timings=timings)
        return {
            score_name: score,
            **result,
            "accuracy_source": "fine-tuned" if final else "inherited",
            "params_count": pruning.params_after,
            "macs": pruning.macs_after,
            "supernet": Path(context.shared["supernet_checkpoint"]).name,
            **metrics,
            **{f"time_{k}": v for k, v in timings.items()},
        }

    def _ship(self, model, params, *, space, dataset, context, plan, layer_bits, quantized,
              val_example, calibration, gate, timings) -> dict[str, Any]:
        """Write the artifact and measure latency, as ``compress-train`` does."""
        from nascompress.compression import save_artifact

        clock = time.perf_counter()
        context.artifact_dir.mkdir(parents=True, exist_ok=True)
        artifact = context.artifact_dir / f"{context.trial_id}.nasc"
        size = save_artifact(
            model, artifact, quantized=quantized,
            metadata=plan.artifact_metadata(space=space.name, params=params,
                                            layer_bits=layer_bits,
                                            input_shape=dataset.input_shape,
                                            num_classes=dataset.num_classes))
        if size != artifact.stat().st_size:
            raise RuntimeError(f"artifact size {size} != file size {artifact.stat().st_size}")
        timings["artifact_s"] = time.perf_counter() - clock
        gate.checkpoint()
        clock = time.perf_counter()
        latency, kind, extra = self._measure_latency(
            model, val_example, calibration, plan=plan, layer_bits=layer_bits, gate=gate,
            val_loader=dataset.loader("val"))
        timings["measure_s"] = time.perf_counter() - clock
        return {"size_bytes": float(size), "latency_ms": latency.median_ms,
                **latency.as_metrics(), "latency_kind": kind,
                "latency_runtime": self.latency_runtime, "artifact": artifact.name, **extra}


_TEACHERS: dict[int, Any] = {}


def _largest(net, batches: int, bn_loader):
    """The largest subnet (float, BatchNorm recalibrated): the finalists' teacher, built
    once per loaded supernet."""
    from nascompress.supernet.training import recalibrate_bn

    key = id(net)
    if key not in _TEACHERS:
        model = net.extract(net.largest())
        recalibrate_bn(model, bn_loader(), batches=batches)
        model.requires_grad_(False)
        _TEACHERS.clear()
        _TEACHERS[key] = model
    return _TEACHERS[key]


def distinct_candidates(records: Sequence[Mapping[str, Any]], objectives,
                        constraints=()) -> list[Mapping[str, Any]]:
    """The feasible COMPLETE trials of ``records`` with finite objectives, one per
    distinct params (the first kept)."""
    from nascompress.pareto import is_candidate

    pool, seen = [], set()
    for record in records:
        key = repr(sorted(record["params"].items()))
        if is_candidate(record, objectives, constraints) and key not in seen:
            seen.add(key)
            pool.append(record)
    return pool


def greedy_hypervolume(vectors: Sequence[Sequence[float]], reference: Sequence[float],
                       count: int, *, among: Sequence[int] | None = None,
                       chosen: Sequence[int] = ()) -> list[int]:
    """Indices of up to ``count`` of ``vectors`` (minimised), each chosen for the largest
    hypervolume it adds to those chosen before it; ties go to the earlier vector.

    ``chosen``: indices already chosen (they count towards ``count``); ``among``: the
    indices that may be chosen (default all).
    """
    from nascompress.pareto import hypervolume

    chosen = list(chosen)
    candidates = range(len(vectors)) if among is None else among
    left = [i for i in candidates if i not in chosen]
    while len(chosen) < count and left:
        base = [vectors[i] for i in chosen]
        best = max(left, key=lambda i: (hypervolume([*base, vectors[i]], reference), -i))
        chosen.append(best)
        left.remove(best)
    return chosen


#: How many binomial standard errors above chance an accuracy must be to count as
#: better than guessing (one-sided p about 0.001 for a model that guesses).
CHANCE_MARGIN = 3.0


def chance_accuracy(dataset) -> tuple[float, int]:
    """The accuracy of always answering the validation split's most frequent class, and
    the split's size."""
    from collections import Counter

    counts: Counter[int] = Counter()
    for _, labels in dataset.loader("val"):
        counts.update(labels.tolist())
    total = sum(counts.values())
    return (max(counts.values()) / total if total else 0.0), total


def at_chance(record: Mapping[str, Any], score: str) -> bool:
    """Whether the trial's accuracy is within :data:`CHANCE_MARGIN` binomial standard
    errors of its recorded chance accuracy (``metrics["chance_accuracy"]`` over
    ``metrics["val_samples"]`` images); False for another score or without a record of
    chance (trials recorded before it was)."""
    metrics = record.get("metrics") or {}
    chance, samples = metrics.get("chance_accuracy"), metrics.get("val_samples")
    if score != "accuracy" or chance is None or not samples:
        return False
    margin = CHANCE_MARGIN * math.sqrt(chance * (1.0 - chance) / samples)
    return float(record["objectives"][score]) <= chance + margin


def finalist_axes(pool: Sequence[Mapping[str, Any]], objectives, *,
                  score: str) -> list[list[float]]:
    """The pool's objective vectors, minimised and scaled to [0, 1] per objective over
    the pool (0 its best value, 1 its worst; 0 for all when they are equal).

    The ``score`` objective (accuracy, the user's metric) stays linear: a point of
    accuracy is worth the same anywhere. Every other objective (size, latency, MACs)
    whose values are all positive is taken in log10 first: costs compare by ratios, and
    halving a 20 kB model is as much a step as halving a 2 MB one.
    """
    columns = []
    for objective in objectives:
        values = [float(record["objectives"][objective.name]) for record in pool]
        if objective.name != score and all(v > 0 for v in values):
            values = [math.log10(v) for v in values]
        values = [objective.as_minimised(v) for v in values]
        low, high = min(values, default=0.0), max(values, default=0.0)
        columns.append([(v - low) / (high - low) if high > low else 0.0 for v in values])
    return [list(row) for row in zip(*columns, strict=True)] if pool else []
