"""The default evaluator: train → (distil) → prune → fine-tune (QAT) → quantize → measure."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nascompress.evaluators._base import Evaluator, ReportFn, TrialContext, no_report
from nascompress.evaluators._registry import register_evaluator
from nascompress.evaluators.latency import LatencySetup
from nascompress.objectives import Objective

IMPORTANCES = ("l1", "l2")
TEACHER_FILE = "teacher.pt"


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"evaluator.{name} must be an integer >= {low}, but got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"evaluator.{name} must be a number > 0, but got {value!r}")


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

    Pipeline per trial: build ``arch/*`` → train ``epochs`` (soft-label distillation from
    the shared teacher when ``distill/alpha > 0``) → structured pruning of
    ``prune/ratio`` of the channels (physically removed) → fine-tune ``finetune_epochs``
    with quantization-aware training at ``quant/bits`` → quantize weights per channel →
    write the compressed artifact → measure.

    Objectives: ``accuracy`` (validation split, max), ``size_bytes`` (length of the
    artifact file, min), ``latency_ms`` (median of timed forward passes, min).

    Latency is timed in torch eager mode on float kernels. Below 32 bits the weights
    are the dequantized low-bit values, so the timing is that of a float model and the
    record says ``latency_kind: simulated``; it is not an integer-kernel measurement.

    Args:
        epochs: training epochs before compression.
        finetune_epochs: fine-tuning epochs after pruning (with QAT when quantizing).
        teacher_epochs: epochs to train the teacher, once per search.
        batch_size: training batch size.
        lr: learning rate of the first training phase.
        finetune_lr: learning rate of the fine-tuning phase.
        importance: pruning importance criterion (``"l1"`` or ``"l2"``).
        threads: torch intra-op threads while training (match the trial's CPUs).
        latency: how latency is measured (:class:`LatencySetup` or its dict form).
    """

    name = "compress-train"

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

    def validate(self) -> None:
        _positive_int("epochs", self.epochs)
        _positive_int("finetune_epochs", self.finetune_epochs, allow_zero=True)
        _positive_int("teacher_epochs", self.teacher_epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("threads", self.threads)
        _positive_float("lr", self.lr)
        _positive_float("finetune_lr", self.finetune_lr)
        if self.importance not in IMPORTANCES:
            raise ValueError(
                f"evaluator.importance must be one of {IMPORTANCES}, but got {self.importance!r}"
            )
        if not isinstance(self.latency, LatencySetup):
            self.latency = LatencySetup(**(self.latency or {}))

    def objectives(self) -> list[Objective]:
        return [
            Objective("accuracy", "max", "fraction"),
            Objective("size_bytes", "min", "bytes"),
            Objective("latency_ms", "min", "ms"),
        ]

    def settings(self) -> dict[str, Any]:
        self.validate()
        return {
            "epochs": self.epochs, "finetune_epochs": self.finetune_epochs,
            "teacher_epochs": self.teacher_epochs, "batch_size": self.batch_size,
            "lr": self.lr, "finetune_lr": self.finetune_lr, "importance": self.importance,
            "threads": self.threads, "latency": self.latency.to_dict(),
            "latency_runtime": "torch-eager",
        }

    # -- once per search ---------------------------------------------------------------

    def prepare(self, *, space, dataset, seed: int, workdir: Path) -> dict[str, Any]:
        """Train the distillation teacher once (or reload it) and share its train logits."""
        dims = space.dimensions()
        alpha = dims.get("distill/alpha")
        alphas = (alpha.grid() or [alpha.high]) if alpha is not None else [0.0]
        if max(alphas) <= 0:
            return {}
        import torch

        from nascompress.evaluators.training import (
            accuracy,
            predict_logits,
            seed_everything,
            train_epochs,
        )

        self.validate()
        torch.set_num_threads(max(1, torch.get_num_threads()))
        teacher_params = largest_architecture(space)
        teacher = space.build_model(
            teacher_params, input_shape=dataset.input_shape, num_classes=dataset.num_classes
        )
        x_train, y_train = torch.from_numpy(dataset.x_train), torch.from_numpy(dataset.y_train)
        x_val, y_val = torch.from_numpy(dataset.x_val), torch.from_numpy(dataset.y_val)
        path = Path(workdir) / TEACHER_FILE
        started = time.perf_counter()
        if path.exists():  # a resumed search reuses its own teacher instead of retraining
            teacher.load_state_dict(torch.load(path, weights_only=True))
            source = "reloaded"
        else:
            generator = seed_everything(seed)
            train_epochs(teacher, x_train, y_train, epochs=self.teacher_epochs, lr=self.lr,
                         batch_size=self.batch_size, generator=generator)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(teacher.state_dict(), path)
            source = "trained"
        return {
            "teacher_logits_train": predict_logits(teacher, x_train).numpy(),
            "teacher": {
                "arch": {k: v for k, v in teacher_params.items() if k.startswith("arch/")},
                "val_accuracy": accuracy(teacher, x_val, y_val),
                "epochs": self.teacher_epochs,
                "source": source,
                "seconds": time.perf_counter() - started,
                "file": TEACHER_FILE,
            },
        }

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
        import torch

        from nascompress.compression import (
            enable_qat,
            finalize_quantization,
            prune_channels,
            save_artifact,
        )
        from nascompress.evaluators.latency import measure_latency
        from nascompress.evaluators.training import accuracy, seed_everything, train_epochs

        self.validate()
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        torch.set_num_threads(self.threads)
        generator = seed_everything(context.seed)
        x_train, y_train = torch.from_numpy(dataset.x_train), torch.from_numpy(dataset.y_train)
        x_val, y_val = torch.from_numpy(dataset.x_val), torch.from_numpy(dataset.y_val)
        alpha = float(params.get("distill/alpha", 0.0))
        temperature = float(params.get("distill/temperature", 1.0))
        bits = int(params.get("quant/bits", 32))
        ratio = float(params.get("prune/ratio", 0.0))
        teacher_logits = None
        if alpha > 0:
            if "teacher_logits_train" not in context.shared:
                raise RuntimeError("distill/alpha > 0 but no teacher was prepared for this search")
            teacher_logits = torch.from_numpy(context.shared["teacher_logits_train"])

        model = space.build_model(
            params, input_shape=dataset.input_shape, num_classes=dataset.num_classes
        )
        step = 0

        def report_epoch(_epoch: int) -> None:
            nonlocal step
            step += 1
            report(step, {"val_accuracy": accuracy(model, x_val, y_val)})

        distill = {"teacher_logits": teacher_logits, "alpha": alpha, "temperature": temperature}
        train_epochs(model, x_train, y_train, epochs=self.epochs, lr=self.lr,
                     batch_size=self.batch_size, generator=generator, on_epoch_end=report_epoch,
                     **distill)
        accuracy_before_compression = accuracy(model, x_val, y_val)
        timings["train_s"] = time.perf_counter() - clock

        clock = time.perf_counter()
        pruning = prune_channels(model, x_train[:2], ratio=ratio, importance=self.importance)
        if bits < 32:
            enable_qat(model, bits=bits)
        train_epochs(model, x_train, y_train, epochs=self.finetune_epochs, lr=self.finetune_lr,
                     batch_size=self.batch_size, generator=generator, on_epoch_end=report_epoch,
                     **distill)
        quantized = finalize_quantization(model, bits=bits) if bits < 32 else None
        timings["compress_s"] = time.perf_counter() - clock

        clock = time.perf_counter()
        val_accuracy = accuracy(model, x_val, y_val)
        context.artifact_dir.mkdir(parents=True, exist_ok=True)
        artifact = context.artifact_dir / f"{context.trial_id}.nasc"
        size = save_artifact(
            model, artifact, quantized=quantized,
            metadata={"space": space.name, "params": dict(params), "bits": bits,
                      "input_shape": list(dataset.input_shape),
                      "num_classes": dataset.num_classes},
        )
        if size != artifact.stat().st_size:  # the reported size must be the file's size
            raise RuntimeError(f"artifact size {size} != file size {artifact.stat().st_size}")
        latency = measure_latency(model, x_val[:1], self.latency)
        timings["measure_s"] = time.perf_counter() - clock

        return {
            "accuracy": val_accuracy,
            "size_bytes": float(size),
            "latency_ms": latency.median_ms,
            **latency.as_metrics(),
            "latency_kind": "measured" if bits == 32 else "simulated",
            "latency_runtime": "torch-eager",
            "accuracy_before_compression": accuracy_before_compression,
            "params_count": pruning.params_after,
            "params_before_pruning": pruning.params_before,
            "macs": pruning.macs_after,
            "macs_before_pruning": pruning.macs_before,
            "artifact": artifact.name,
            **{f"time_{k}": v for k, v in timings.items()},
        }
