"""The default evaluator: train → (distil) → prune → fine-tune (QAT) → quantize → measure."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascompress.compression.plan import IMPORTANCES, CompressionPlan
from nascompress.evaluators._base import Evaluator, LatencyUse, Prepared, no_report
from nascompress.evaluators._registry import register_evaluator
from nascompress.latency.measure import LatencySetup
from nascompress.objectives import Objective
from nascompress.training.recipe import (
    PHASES,
    Metric,
    Recipe,
    check_prepare_device,
    load_function,
)

if TYPE_CHECKING:
    from nascompress.evaluators._base import ReportFn, TrialContext

RUNTIMES = ("onnxruntime", "torch")
TEACHER_FILE = "teacher.pt"
TEACHER_KEYS = {"params", "model", "model_kwargs", "checkpoint"}
#: Calibration samples for Taylor importance, activation ranges and int8 ONNX.
CALIBRATION_SAMPLES = 256


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"evaluator.{name} must be an integer >= {low}, but got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"evaluator.{name} must be a number > 0, but got {value!r}")


def _onnx_loader_accuracy(session, loader) -> float:
    """Top-1 accuracy of an ONNX session over a loader: one call for in-memory arrays
    (as it always was), else batch by batch, counting hits."""
    import numpy as np

    from nascompress.compression.onnx_export import onnx_accuracy

    x = getattr(loader, "x", None)
    if x is not None and getattr(loader, "y", None) is not None:
        return onnx_accuracy(session, x.cpu().numpy(), loader.y.cpu().numpy())
    hits, total = 0, 0
    for inputs, labels in loader:
        inputs, labels = np.asarray(inputs, dtype=np.float32), np.asarray(labels)
        hits += round(onnx_accuracy(session, inputs, labels) * len(labels))
        total += len(labels)
    return hits / total


def _in_memory(dataset) -> bool:
    """Whether the dataset is arrays in memory, with fixed sample positions."""
    from nascompress.data import DatasetSplits

    return isinstance(dataset, DatasetSplits)


def _phase_metrics(phase: str, stats) -> dict[str, Any]:
    """What a training phase records: its throughput when known, its arithmetic."""
    metrics: dict[str, Any] = {f"{phase}_precision": stats.precision}
    if stats.images:
        metrics[f"{phase}_images_per_s"] = stats.images_per_s
    return metrics


def _options(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"evaluator.{name} must be a mapping, but got {value!r}")
    return dict(value)


def training_device(given: str) -> str:
    """``"cuda"`` when the trial was given a GPU and torch sees one, else ``"cpu"``."""
    import torch

    return "cuda" if given == "cuda" and torch.cuda.is_available() else "cpu"


def largest_architecture(space) -> dict[str, Any]:
    """The ``arch/*`` params with every dimension at its largest value (the teacher)."""
    params = {}
    for key, dim in space.dimensions().items():
        grid = dim.grid()
        params[key] = max(grid) if grid is not None else dim.high
    return params


@register_evaluator("compress-train")
class CompressTrainEvaluator(Evaluator):
    """Trains a candidate, compresses it as its params say, and measures three objectives.

    Pipeline per trial (each step only when its dimension asks for it):

    1. build ``arch/*`` and train ``epochs`` — with soft-label distillation from the
       shared teacher (``distill/alpha``, ``distill/temperature``) and intermediate-
       feature distillation (``distill/feature_weight``, learned 1×1 projections);
    2. low-rank factorization (``lowrank/ratio``: SVD for linear layers, Tucker-2 for
       convs);
    3. structured pruning: ``prune/ratio`` of the channels physically removed
       (torch-pruning), ranked by ``prune/importance``;
    4. unstructured magnitude pruning (``prune/sparsity``), kept during fine-tuning;
    5. fine-tune ``finetune_epochs`` with quantization-aware training at ``quant/bits``
       (per layer with a mixed-precision space) in ``quant/scheme``, and 8-bit activation
       fake-quantization when ``quant/activations`` is 8. With unstructured sparsity the
       fine-tune keeps the sparsity mask instead and weights are quantized post-training
       afterwards (QAT would train the zeros back);
    6. write the compressed artifact (its byte length is ``size_bytes``);
    7. measure ``accuracy`` on the validation split and ``latency_ms``.

    Latency runtimes (``latency_runtime``): ``"onnxruntime"`` (default) exports the model
    to ONNX; float models are timed on ONNX Runtime's float kernels (``latency_kind:
    fp32``); models whose every layer has 8-bit symmetric or affine weights are
    re-quantized to static int8 (QDQ) and timed on ONNX Runtime's integer kernels
    (``latency_kind: int8``, checked in the optimized graph). Below 8 bits, k-means
    codebooks, or mixed precision no CPU kernel exists, so they are timed on the same
    int8 path and recorded as ``latency_kind: simulated``. ``"torch"`` times torch eager
    float kernels (``fp32`` for float models, ``simulated`` otherwise). Unstructured
    sparsity never changes latency: dense kernels do the same work.

    Measurements go through the trial's latency client
    (:mod:`~nascompress.latency`): the trial holds a shared lease on
    its node's gate while it trains (checkpoints after every batch and between phases)
    and measures under the exclusive lease, on the pinned target when the search names
    one; results are cached by model structure. When a ``report`` listens (Ray Tune,
    early stopping), each epoch's report carries the compressed model's exact
    ``est_params_count``, ``est_macs``, ``est_size_bytes`` (the artifact of the
    untrained compressed model: the same length as the final one for dense models) and
    ``est_latency_ms`` (that structure, measured; the final measurement then comes
    from the cache).

    Args:
        epochs: training epochs before compression.
        finetune_epochs: fine-tuning epochs after pruning (with QAT when quantizing).
        teacher_epochs: epochs to train the teacher, once per search.
        batch_size: training batch size.
        lr: learning rate of the first training phase.
        finetune_lr: learning rate of the fine-tuning phase.
        importance: default pruning criterion when the space has no ``prune/importance``.
        threads: torch intra-op threads while training (match the trial's CPUs).
        latency: how latency is measured (:class:`LatencySetup` or its dict form);
            ``None``: the search's ``latency:`` settings (the defaults when constructed
            outside a search).
        latency_runtime: ``"onnxruntime"`` or ``"torch"``; ``None``: the search's
            ``latency.runtime`` (``"onnxruntime"`` outside a search).
        teacher: the distillation teacher. ``None``: the largest architecture of the
            space, trained once per search. Or a mapping with ``params`` (an
            architecture of the space) or ``model`` (``"package.module:factory"``
            returning an ``nn.Module``, with ``model_kwargs``), and optionally
            ``checkpoint`` (a ``state_dict`` file, loaded with ``weights_only=True``;
            given a checkpoint the teacher is not trained).
        recipe: how each training phase trains (:class:`~nascompress.training.Recipe` or
            its dict form): the built-in trainer's optimizer, schedule, label smoothing,
            mixed precision and ``channels_last``, or the user's function per phase
            (``teacher``, ``train``, ``finetune``, or ``function`` for all), called with
            a :class:`~nascompress.training.TrainingContext`. ``None``: Adam with a
            cosine schedule, as always.
        prepare_device: where the driver trains what the search prepares once (the
            teacher here, the supernet for ``supernet``): ``"auto"`` (the default) a GPU
            when torch sees one on the driver, else the CPU; ``"cuda"`` or ``"cpu"`` to
            say so (``"cuda"`` without a GPU is refused before anything trains).
            Trials get theirs through ``resources.gpu``.
        metric: the user's metric scored instead of accuracy
            (:class:`~nascompress.training.Metric` or its dict form: ``function``,
            ``name``, ``mode``, ``unit``); the objective, the per-epoch report
            (``val_<name>``) and the teacher's record then use its name.

    Every training phase records its wall time; the built-in trainer also its
    throughput (``train_images_per_s``, ``finetune_images_per_s``) and arithmetic
    (``train_precision``).
    """

    name = "compress-train"
    uses_latency_service = True

    def __init__(
        self,
        *,
        epochs: int = 15,
        finetune_epochs: int = 5,
        teacher_epochs: int = 30,
        batch_size: int = 64,
        lr: float = 3e-3,
        finetune_lr: float = 1e-3,
        importance: str = "l1",
        threads: int = 1,
        latency: LatencySetup | Mapping[str, Any] | None = None,
        latency_runtime: str | None = None,
        teacher: Mapping[str, Any] | None = None,
        recipe: Recipe | Mapping[str, Any] | None = None,
        metric: Metric | Mapping[str, Any] | None = None,
        prepare_device: str = "auto",
    ) -> None:
        self.epochs = epochs
        self.finetune_epochs = finetune_epochs
        self.teacher_epochs = teacher_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.finetune_lr = finetune_lr
        self.importance = importance
        self.threads = threads
        self.latency = latency
        self.latency_runtime = latency_runtime
        self.teacher = teacher
        self.recipe = recipe
        self.metric = metric
        self.prepare_device = prepare_device

    def validate(self) -> None:
        _positive_int("epochs", self.epochs)
        _positive_int("finetune_epochs", self.finetune_epochs, allow_zero=True)
        _positive_int("teacher_epochs", self.teacher_epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("threads", self.threads)
        _positive_float("lr", self.lr)
        _positive_float("finetune_lr", self.finetune_lr)
        check_prepare_device(self.prepare_device)
        if self.importance not in IMPORTANCES:
            raise ValueError(
                f"evaluator.importance must be one of {IMPORTANCES}, but got {self.importance!r}"
            )
        if self.latency_runtime is None:
            self.latency_runtime = RUNTIMES[0]
        if self.latency_runtime not in RUNTIMES:
            raise ValueError(
                f"evaluator.latency_runtime must be one of {RUNTIMES}, but got "
                f"{self.latency_runtime!r}"
            )
        if not isinstance(self.latency, LatencySetup):
            self.latency = LatencySetup(**(self.latency or {}))
        self._validate_teacher()
        if not isinstance(self.recipe, Recipe):
            self.recipe = Recipe(**_options("recipe", self.recipe))
        if self.metric is not None and not isinstance(self.metric, Metric):
            self.metric = Metric(**_options("metric", self.metric))
        # Import the user's functions now: a typo costs a line, not a trained teacher.
        for phase in PHASES:
            self._function(phase)
        if self.metric is not None:
            load_function(self.metric.function, "evaluator.metric.function")

    def _function(self, phase: str):
        """The user's function for ``phase`` and the field naming it, or ``(None, None)``."""
        path = self.recipe.function_for(phase)
        if path is None:
            return None, None
        field = f"evaluator.recipe.{phase if getattr(self.recipe, phase) else 'function'}"
        return load_function(path, field), field

    def _validate_teacher(self) -> None:
        if self.teacher is None:
            return
        if not isinstance(self.teacher, Mapping):
            raise ValueError(
                f"evaluator.teacher must be a mapping with 'params' or 'model', but got "
                f"{self.teacher!r}"
            )
        unknown = sorted(set(self.teacher) - TEACHER_KEYS)
        if unknown:
            raise ValueError(
                f"evaluator.teacher: unknown key(s) {unknown}; allowed: {sorted(TEACHER_KEYS)}"
            )
        if ("params" in self.teacher) == ("model" in self.teacher):
            raise ValueError("evaluator.teacher needs exactly one of 'params' or 'model'")
        checkpoint = self.teacher.get("checkpoint")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise ValueError(
                f"evaluator.teacher.checkpoint: file {str(checkpoint)!r} does not exist"
            )

    def classification(self) -> bool:
        # With the user's metric the task may be anything (segmentation, detection, ...);
        # top-1 accuracy against class labels is what assumes a classifier.
        return self.metric is None

    def _score_name(self) -> str:
        metric = self.metric
        if metric is None:
            return "accuracy"
        return metric.name if isinstance(metric, Metric) else Metric(**metric).name

    def objectives(self) -> list[Objective]:
        metric = self.metric
        if metric is not None and not isinstance(metric, Metric):
            metric = Metric(**metric)
        return [
            (Objective(metric.name, metric.mode, metric.unit) if metric is not None
             else Objective("accuracy", "max", "fraction")),
            Objective("size_bytes", "min", "bytes"),
            Objective("latency_ms", "min", "ms"),
        ]

    def intermediate_metrics(self) -> dict[str, str]:
        # What each epoch's report knows: accuracy so far, and the compressed model's
        # size and measured latency, which do not wait for training.
        score = self.objectives()[0]
        return {f"val_{score.name}": score.mode, "est_size_bytes": "min",
                "est_latency_ms": "min"}

    def intermediate_margins(self) -> dict[str, float]:
        # About 3 validation samples of digits: early accuracies are noisy and bunch up.
        # A user's metric has a scale we do not know: the rule's relative margin applies.
        return {"val_accuracy": 0.01} if self.metric is None else {}

    def configure_latency(self, *, setup: LatencySetup, runtime: str) -> None:
        # Options given to the evaluator itself are the more specific ones and win.
        if self.latency is None:
            self.latency = setup
        if self.latency_runtime is None:
            self.latency_runtime = runtime

    def latency_use(self) -> LatencyUse:
        self.validate()
        return LatencyUse(self.latency, self.latency_runtime)

    def settings(self) -> dict[str, Any]:
        self.validate()
        return {
            "epochs": self.epochs, "finetune_epochs": self.finetune_epochs,
            "teacher_epochs": self.teacher_epochs, "batch_size": self.batch_size,
            "lr": self.lr, "finetune_lr": self.finetune_lr, "importance": self.importance,
            "threads": self.threads, "latency": self.latency.to_dict(),
            "latency_runtime": self.latency_runtime,
            "teacher": dict(self.teacher) if self.teacher else None,
            "recipe": self.recipe.to_dict(),
            "metric": self.metric.to_dict() if self.metric is not None else None,
            "prepare_device": self.prepare_device,
        }

    # -- once per search ---------------------------------------------------------------

    def check_environment(self) -> str | None:
        if self.prepare_device != "cuda":  # auto and cpu run anywhere
            return None
        from nascompress.training import select_prepare_device

        try:
            select_prepare_device(self.prepare_device)
        except ValueError as exc:
            return str(exc)
        return None

    def _needs_teacher(self, space) -> bool:
        dims = space.dimensions()
        for key in ("distill/alpha", "distill/feature_weight"):
            dim = dims.get(key)
            if dim is not None and max(dim.grid() or [dim.high]) > 0:
                return True
        return False

    def _build_teacher(self, space, dataset, spec: Mapping[str, Any]):
        if spec["kind"] == "import":
            from nascompress.registry import import_object

            factory = import_object(spec["model"], "evaluator.teacher.model")
            return factory(**spec.get("model_kwargs", {}))
        return space.build_model(spec["params"], input_shape=dataset.input_shape,
                                 num_classes=dataset.num_classes)

    def prepare(self, *, space, dataset, seed: int, workdir: Path) -> Prepared:
        """Train (or load) the distillation teacher once and share it with every trial.

        ``run.json`` records it as ``teacher`` (architecture or import path, validation
        score, epochs, where it came from, seconds, file). With in-memory data the
        teacher's logits on the train split are computed here once (no augmentation:
        they are the same every epoch); streamed data runs the teacher on each batch.
        """
        if not self._needs_teacher(space):
            return Prepared()
        import torch

        from nascompress.training import (
            predict_logits,
            seed_everything,
            select_prepare_device,
        )

        self.validate()
        given = dict(self.teacher or {})
        if "model" in given:
            spec = {"kind": "import", "model": given["model"],
                    "model_kwargs": dict(given.get("model_kwargs") or {})}
        else:
            params = dict(given.get("params") or largest_architecture(space))
            spec = {"kind": "space", "params": params}
        # Seeded before the teacher is built: its initial weights are part of what a
        # seeded search must reproduce.
        generator = seed_everything(seed)
        teacher = self._build_teacher(space, dataset, spec)
        path = Path(workdir) / TEACHER_FILE
        started = time.perf_counter()
        device = None  # where it trained; None when it did not
        if given.get("checkpoint"):
            teacher.load_state_dict(torch.load(given["checkpoint"], weights_only=True))
            source = f"checkpoint {given['checkpoint']}"
        elif path.exists():  # a resumed search reuses its own teacher instead of retraining
            teacher.load_state_dict(torch.load(path, weights_only=True))
            source = "reloaded"
        else:
            device = select_prepare_device(self.prepare_device)
            self._train_phase("teacher", teacher.to(device), dataset=dataset, device=device,
                              epochs=self.teacher_epochs, lr=self.lr, generator=generator,
                              seed=seed)
            teacher.cpu()  # what trials and the saved file expect, wherever it trained
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(teacher.state_dict(), path)
            source = "trained"
        score = f"val_{self._score_name()}"
        record = {
            **({"arch": {k: v for k, v in spec["params"].items() if k.startswith("arch/")}}
               if spec["kind"] == "space" else {"model": spec["model"]}),
            score: self._score(teacher, dataset.loader("val"), "cpu"),
            "epochs": self.teacher_epochs if source == "trained" else None,
            "device": device,
            "source": source,
            "seconds": time.perf_counter() - started,
            "file": TEACHER_FILE if source != "checkpoint" else given["checkpoint"],
        }
        shared = {
            "teacher_spec": spec,
            "teacher_state": {k: v.numpy() for k, v in teacher.state_dict().items()},
        }
        if _in_memory(dataset):
            shared["teacher_logits_train"] = predict_logits(
                teacher, dataset.loader("train")).numpy()
        return Prepared(
            shared=shared, record={"teacher": record},
            summary=(f"teacher {source}: {score.replace('_', ' ', 1)} {record[score]:.4f} "
                     f"({record['seconds']:.1f} s)"),
        )

    # -- training phases and the score -------------------------------------------------

    def _train_phase(self, phase: str, model, *, dataset, device: str, epochs: int,
                     lr: float, generator, seed: int, distill=None, on_epoch_end=None,
                     on_batch_end=None):
        """Train ``model`` for one phase: the built-in trainer, or the user's function.

        Returns the phase's :class:`~nascompress.training.PhaseStats` (the images count
        is unknown, 0, for a user function).
        """
        from nascompress.training import (
            PhaseStats,
            TrainingContext,
            distill_loss_for,
            run_training_function,
            select_channels_last,
            select_precision,
            train_epochs,
        )

        train_loader = dataset.loader("train", batch_size=self.batch_size, shuffle=True,
                                      generator=generator, device=device)
        function, field = self._function(phase)
        if function is None:
            return train_epochs(model, train_loader, epochs=epochs, lr=lr,
                                recipe=self.recipe, device=device, distill=distill,
                                on_epoch_end=on_epoch_end, on_batch_end=on_batch_end)
        precision = select_precision(device, self.recipe.amp)
        context = TrainingContext(
            phase=phase, model=model, train_loader=train_loader,
            val_loader=dataset.loader("val", device=device), device=device, epochs=epochs,
            lr=lr, batch_size=self.batch_size, seed=seed, generator=generator,
            recipe=self.recipe, precision=precision,
            channels_last=select_channels_last(device, self.recipe.channels_last,
                                               1 + len(dataset.input_shape)),
            distill_loss=distill_loss_for(distill),
            checkpoint=on_batch_end or (lambda: None),
            epoch_end=on_epoch_end or (lambda epoch: None),
        )
        started = time.perf_counter()
        run_training_function(function, context, field=field,
                              path=self.recipe.function_for(phase))
        return PhaseStats(seconds=time.perf_counter() - started, precision=precision.name)

    def _score(self, model, loader, device: str) -> float:
        """Validation accuracy, or the user's metric, of ``model`` on ``device``."""
        from nascompress.training import accuracy, score_metric

        if self.metric is None:
            return accuracy(model, loader, device=device)
        function = load_function(self.metric.function, "evaluator.metric.function")
        return score_metric(function, model, loader, device,
                            field="evaluator.metric.function", path=self.metric.function)

    # -- per trial ---------------------------------------------------------------------

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        space,
        dataset,
        context: TrialContext,
        report: ReportFn = no_report,
    ) -> dict[str, Any]:
        """Run the pipeline as one participant of the node's latency gate.

        The whole trial holds a shared lease (see
        :mod:`~nascompress.latency`): every training batch and every
        pipeline phase ends at a checkpoint where it pauses while another trial's
        measurement owns the node; its own measurement takes the exclusive lease.
        """
        from nascompress.latency.client import current

        gate = current()
        with gate.training():
            return self._evaluate(params, space=space, dataset=dataset, context=context,
                                  report=report, gate=gate)

    def _evaluate(self, params, *, space, dataset, context, report, gate) -> dict[str, Any]:
        import torch

        from nascompress.compression import save_artifact
        from nascompress.data import take, train_sample
        from nascompress.training import Distillation, seed_everything

        self.validate()
        timings: dict[str, float] = {}
        metrics: dict[str, Any] = {}
        clock = time.perf_counter()
        torch.set_num_threads(self.threads)
        generator = seed_everything(context.seed)
        score_name = self._score_name()
        # A fixed random sample of the train split calibrates pruning importance,
        # activation ranges and int8 ONNX (see train_sample).
        calibration, calibration_labels = train_sample(dataset, CALIBRATION_SAMPLES)
        val_example = take(dataset.loader("val", batch_size=1), 1)[0]
        # Training and fine-tuning run on the device the trial was given (a GPU when
        # resources.gpu > 0); compression is finalized, saved and timed on the CPU copy.
        device = training_device(context.device)
        calib_x, calib_y = calibration.to(device), calibration_labels.to(device)
        val_loader = dataset.loader("val", device=device)
        alpha = float(params.get("distill/alpha", 0.0))
        feature_weight = float(params.get("distill/feature_weight", 0.0))
        plan = CompressionPlan.from_params(params, importance=self.importance)
        if (alpha > 0 or feature_weight > 0) and "teacher_state" not in context.shared:
            raise RuntimeError("distillation was asked for but no teacher was prepared")

        model = space.build_model(
            params, input_shape=dataset.input_shape, num_classes=dataset.num_classes
        ).to(device)
        metrics["train_device"] = device
        distill = None
        if alpha > 0 or feature_weight > 0:
            table = context.shared.get("teacher_logits_train")
            # The teacher itself runs per batch for feature distillation, for streamed
            # data (no fixed sample positions) and inside a user's training function.
            live = (feature_weight > 0 or table is None
                    or any(self._function(p)[0] is not None for p in ("train", "finetune")))
            teacher = None
            if live:
                teacher = self._build_teacher(space, dataset, context.shared["teacher_spec"])
                teacher.load_state_dict({k: torch.from_numpy(v)
                                         for k, v in context.shared["teacher_state"].items()})
                teacher.eval().requires_grad_(False).to(device)
            distiller = None
            if feature_weight > 0:
                from nascompress.compression import FeatureDistiller, default_feature_pairs

                distiller = FeatureDistiller(model, teacher,
                                             default_feature_pairs(model, teacher),
                                             example_input=calib_x[:2]).to(device)
            distill = Distillation(
                alpha=alpha, temperature=float(params.get("distill/temperature", 1.0)),
                teacher=teacher,
                teacher_logits=(torch.from_numpy(table).to(device) if table is not None
                                and alpha > 0 else None),
                feature_distiller=distiller, feature_weight=feature_weight,
                label_smoothing=self.recipe.label_smoothing)
        step = 0
        # Size, cost and latency of the compressed model are known before training
        # (pruning keeps a fixed channel count whatever the weights): reported with every
        # epoch, so a multi-objective early-stopping rule can compare trials on more than
        # accuracy.
        estimates = ({} if report is no_report else self._early_estimates(
            space, params, plan, dataset, calibration[:2], val_example=val_example,
            calibration=calibration, gate=gate))
        gate.checkpoint()

        def report_epoch(_epoch: int) -> None:
            nonlocal step
            step += 1
            report(step, {f"val_{score_name}": self._score(model, val_loader, device),
                          **estimates})

        phase = dict(dataset=dataset, device=device, generator=generator, seed=context.seed,
                     on_epoch_end=report_epoch, on_batch_end=gate.checkpoint)
        stats = self._train_phase("train", model, epochs=self.epochs, lr=self.lr,
                                  distill=distill, **phase)
        metrics.update(_phase_metrics("train", stats))
        if distill is not None and distill.features:
            # Projections are training aids: they leave with the hooks, before compression.
            distill.feature_distiller.remove()
            distill = distill.without_features()
        metrics[f"{score_name}_before_compression"] = self._score(model, val_loader, device)
        timings["train_s"] = time.perf_counter() - clock
        gate.checkpoint()

        clock = time.perf_counter()
        # Compression, step by step as the plan orders it: low-rank -> prune (structure),
        # then sparsity masks or QAT for the fine-tune, then the final weights.
        lowrank, pruning = plan.apply_structure_(
            model, calib_x[:2], calibration=(calib_x, calib_y))
        if lowrank is not None:
            metrics["lowrank_layers"] = len(lowrank.layers)
        layer_bits = plan.layer_bits(model)
        sparse = plan.prepare_finetune_(model, layer_bits, calibration=calib_x)
        if sparse is not None:
            metrics["sparsity_requested"] = sparse.sparsity
        gate.checkpoint()
        stats = self._train_phase("finetune", model, epochs=self.finetune_epochs,
                                  lr=self.finetune_lr, distill=distill, **phase)
        metrics.update(_phase_metrics("finetune", stats))
        model = model.cpu()
        achieved, quantized = plan.finalize_(model, layer_bits)
        if achieved is not None:
            metrics["sparsity"] = sum(achieved.values()) / max(1, len(achieved))
        timings["compress_s"] = time.perf_counter() - clock

        clock = time.perf_counter()
        score = self._score(model, dataset.loader("val"), "cpu")
        context.artifact_dir.mkdir(parents=True, exist_ok=True)
        artifact = context.artifact_dir / f"{context.trial_id}.nasc"
        size = save_artifact(
            model, artifact, quantized=quantized,
            metadata=plan.artifact_metadata(space=space.name, params=params,
                                            layer_bits=layer_bits,
                                            input_shape=dataset.input_shape,
                                            num_classes=dataset.num_classes),
        )
        if size != artifact.stat().st_size:  # the reported size must be the file's size
            raise RuntimeError(f"artifact size {size} != file size {artifact.stat().st_size}")
        timings["artifact_s"] = time.perf_counter() - clock
        gate.checkpoint()

        clock = time.perf_counter()
        latency, kind, extra = self._measure_latency(
            model, val_example, calibration, plan=plan, layer_bits=layer_bits, gate=gate,
            val_loader=dataset.loader("val") if self.metric is None else None,
        )
        metrics.update(extra)
        timings["measure_s"] = time.perf_counter() - clock

        return {
            score_name: score,
            "size_bytes": float(size),
            "latency_ms": latency.median_ms,
            **latency.as_metrics(),
            "latency_kind": kind,
            "latency_runtime": self.latency_runtime,
            "params_count": pruning.params_after,
            "params_before_pruning": pruning.params_before,
            "macs": pruning.macs_after,
            "macs_before_pruning": pruning.macs_before,
            "artifact": artifact.name,
            **metrics,
            **{f"time_{k}": v for k, v in timings.items()},
        }

    def _early_estimates(self, space, params, plan, dataset, example, *, val_example,
                         calibration, gate) -> dict[str, float]:
        """Parameters, MACs, bytes and latency the compressed model will have, pre-training.

        A copy of the untrained model is factorized, pruned, sparsified and quantized as
        the params say (channel counts, bit-widths and code sizes do not depend on the
        weights) and written as an artifact: ``est_size_bytes`` is that file's length, so
        it includes the header and scales a bit-count estimate would miss. Its latency is
        *measured* (``est_latency_ms``): dense kernels take as long whatever the weights,
        and the latency cache keys on structure, so the final measurement of the trained
        model is then a cache hit rather than a second timing. Only computed when a
        ``report`` listens.
        """
        import copy

        import torch

        from nascompress.compression import save_artifact

        model = space.build_model(params, input_shape=dataset.input_shape,
                                  num_classes=dataset.num_classes)
        # Channel counts do not depend on the ranking: l1 needs no data.
        _, pruning = plan.apply_structure_(model, example, importance="l1")
        # Fresh BatchNorm layers are all identical, so their folded biases are equal and
        # the ONNX exporter would share one tensor between layers: a graph a trained
        # model never has, and a different cache key. Random values avoid that.
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.running_mean.normal_()
                    module.running_var.uniform_(0.5, 1.5)
                    if module.affine:
                        module.weight.uniform_(0.5, 1.5)
                        module.bias.normal_()
        layer_bits = plan.layer_bits(model)
        shipped = copy.deepcopy(model)
        plan.sparsify_(shipped)
        _, quantized = plan.finalize_(shipped, layer_bits)
        with tempfile.TemporaryDirectory(prefix="nascompress-estimate-") as tmp:
            size = save_artifact(
                shipped, Path(tmp) / "estimate.nasc", quantized=quantized,
                metadata=plan.artifact_metadata(space=space.name, params=params,
                                                layer_bits=layer_bits,
                                                input_shape=dataset.input_shape,
                                                num_classes=dataset.num_classes))
        latency, _, _ = self._measure_latency(
            model, val_example, calibration, plan=plan, layer_bits=layer_bits, gate=gate,
            with_accuracy=False)
        return {"est_params_count": float(pruning.params_after),
                "est_macs": float(pruning.macs_after),
                "est_size_bytes": float(size),
                "est_latency_ms": latency.median_ms}

    def _measure_latency(self, model, example, calibration, *, plan, layer_bits,
                         gate=None, with_accuracy=True, val_loader=None):
        """Time the compressed model on the configured runtime; returns (result, kind, metrics).

        ``example`` is one input (batch of 1). With a ``val_loader``, a model re-quantized
        to int8 ONNX also records its accuracy there (``onnx_int8_accuracy``).

        The measurement goes through the trial's latency client (``gate``): cached result,
        or a fresh one under the node's exclusive lease, here or on the pinned target.
        The kind is the plan's (:meth:`CompressionPlan.latency_kind`); an int8 claim is
        checked in the optimized graph, except for the pre-training estimate
        (``with_accuracy=False``), whose kind is not recorded.
        """
        import copy

        from nascompress.compression import disable_activation_quant
        from nascompress.latency.client import current

        gate = gate if gate is not None else current()
        timed = copy.deepcopy(model).eval()
        # Activation fake-quant ops would be timed as extra float work: the int8 runtime
        # quantizes activations itself, and a float deployment has none.
        disable_activation_quant(timed)
        quantized = bool(plan.quantized_layers(layer_bits))
        if self.latency_runtime == "torch":
            result = gate.measure_torch(timed, example, self.latency)
            return result, plan.latency_kind(layer_bits, runtime="torch"), {}

        from nascompress.compression.onnx_export import (
            INTEGER_OP_TYPES,
            export_onnx,
            optimized_op_types,
            ort_session,
            quantize_onnx_int8,
        )

        extra: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="nascompress-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            extra["onnx_fp32_bytes"] = export_onnx(timed, example, path)
            integer_kernels = False
            if quantized:
                int8_path = Path(tmp) / "model.int8.onnx"
                extra["onnx_int8_bytes"] = quantize_onnx_int8(path, int8_path,
                                                              calibration=calibration)
                path = int8_path
                if with_accuracy and plan.int8_deployable(layer_bits):
                    integer_kernels = bool(set(optimized_op_types(
                        path, threads=self.latency.threads)) & INTEGER_OP_TYPES)
            kind = plan.latency_kind(layer_bits, runtime=self.latency_runtime,
                                     integer_kernels=integer_kernels)
            if quantized and with_accuracy and val_loader is not None:
                session = ort_session(path, threads=self.latency.threads)
                extra["onnx_int8_accuracy"] = _onnx_loader_accuracy(session, val_loader)
            model_bytes = path.read_bytes()
        result = gate.measure_onnx(model_bytes, example.numpy(), self.latency)
        return result, kind, extra
