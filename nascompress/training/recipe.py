"""The training recipe's settings, the user metric's declaration, and the GPU choices.

Importing this module imports neither torch nor the user's code: settings are checked
where the config is read, the user's functions are imported by :func:`load_function`
when the evaluator validates its options (still before any compute).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from nascompress.settings import ConstraintError, Settings

#: The training phases of the compression pipeline, in the order they run.
PHASES = ("teacher", "train", "finetune")
#: What ``amp`` may say: ``auto`` is bf16 on a GPU that has it, else fp16; CPU: off.
AMP_MODES = ("auto", "off", "bf16", "fp16")


def _import_path(value: str | None) -> str | None:
    if value is None:
        return value
    module, _, attr = value.partition(":")
    if not module or not attr:
        raise ConstraintError("an import path 'package.module:function'")
    return value


class Recipe(Settings):
    """How the built-in trainer trains each phase, or which user function does.

    The defaults are the recipe every search has used: Adam, the phase's learning rate
    decayed by a cosine over all its steps, plain cross-entropy, no warm-up. The
    learning rates, epochs and batch size stay the evaluator's own options.

    A user function (``function`` for every phase, or ``teacher`` / ``train`` /
    ``finetune`` for one) replaces the built-in trainer for that phase; it is called as
    ``fn(ctx)`` with a :class:`~nascompress.training.TrainingContext`. The GPU options
    (``amp``, ``channels_last``) apply to the built-in trainer and are handed to user
    functions in ``ctx.precision`` / ``ctx.channels_last``.
    """

    section: ClassVar[str] = "evaluator.recipe"

    #: ``adam`` (the default), ``adamw`` (decoupled weight decay) or ``sgd``.
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    #: SGD momentum.
    momentum: float = Field(0.9, ge=0, lt=1)
    #: Nesterov momentum (SGD with ``momentum > 0``).
    nesterov: bool = False
    #: L2 penalty (``adam``, ``sgd``) or decoupled decay (``adamw``).
    weight_decay: float = Field(0.0, ge=0)
    #: cross-entropy label smoothing (also the hard-label term of distillation).
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    #: linear warm-up from ``lr / steps`` to ``lr``, in epochs, at the start of each
    #: phase (at most half the phase).
    warmup_epochs: int = Field(0, ge=0)
    #: after warm-up: ``cosine`` decay to zero over the phase, or ``constant``.
    schedule: Literal["cosine", "constant"] = "cosine"
    #: mixed precision on CUDA: ``auto`` (bf16 where supported, else fp16 with a grad
    #: scaler), ``off``, ``bf16`` or ``fp16``. The CPU always trains in float32.
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    #: NHWC memory layout for image batches: ``auto`` (on CUDA), ``true``, ``false``.
    channels_last: Any = "auto"
    #: the user's training function for every phase, ``"package.module:function"``.
    function: str | None = None
    #: the user's function for one phase (wins over ``function`` for it).
    teacher: str | None = None
    train: str | None = None
    finetune: str | None = None

    check_paths = field_validator("function", "teacher", "train", "finetune")(_import_path)

    @field_validator("channels_last")
    @classmethod
    def _auto_or_bool(cls, value: Any) -> Any:
        if value != "auto" and not isinstance(value, bool):
            raise ConstraintError("'auto', true or false")
        return value

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Recipe:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConstraintError(
                "false unless optimizer is 'sgd' with momentum > 0", field="nesterov",
                value=self.nesterov)
        return self

    def function_for(self, phase: str) -> str | None:
        """The user function's import path for ``phase``, or ``None`` (built-in)."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, but got {phase!r}")
        return getattr(self, phase) or self.function

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


class Metric(Settings):
    """The user's metric, scored instead of accuracy: ``fn(model, loader, device)``.

    ``fn`` gets the model in eval mode (gradients off), the validation loader
    (``(inputs, labels)`` batches; in-memory data may already be on the device, so move
    them with ``.to(device)``) and the device the model is on, and returns a finite real
    number (a one-element tensor is accepted). ``name`` becomes the objective (and
    ``val_<name>`` the intermediate metric early stopping compares), optimised in
    ``mode``; ``unit`` is shown in tables (``fraction`` is printed like accuracy).
    """

    section: ClassVar[str] = "evaluator.metric"

    function: str
    name: str = Field(min_length=1)
    mode: Literal["max", "min"] = "max"
    unit: str = ""

    check_path = field_validator("function")(_import_path)

    @field_validator("name")
    @classmethod
    def _not_a_measured_objective(cls, value: str) -> str:
        if value in ("size_bytes", "latency_ms"):
            raise ConstraintError("a name other than the measured objectives size_bytes "
                                  "and latency_ms")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def load_function(path: str, field: str) -> Callable[..., Any]:
    """Import ``path`` and check it is callable.

    Raises:
        ValueError: one line naming ``field``: the module does not import, has no such
            attribute, or the attribute is not callable.
    """
    from nascompress.registry import RegistryError, import_object

    try:
        found = import_object(path, field)
    except RegistryError as exc:
        raise ValueError(f"{field} must be an importable function, but got {path!r} "
                         f"({str(exc).removeprefix(f'{field}: ')})") from None
    if not callable(found):
        raise ValueError(f"{field} must be a callable, but got {path!r} (a "
                         f"{type(found).__name__})")
    return found


@dataclass(frozen=True)
class Precision:
    """The arithmetic a training phase runs in.

    Attributes:
        name: ``"fp32"``, ``"bf16"`` or ``"fp16"``: what records say.
        scaler: fp16 needs a ``GradScaler``: its small range underflows gradients.
    """

    name: str = "fp32"
    scaler: bool = False

    @property
    def autocast(self) -> bool:
        return self.name != "fp32"

    @property
    def dtype(self):
        """The ``torch`` dtype autocast uses, or ``None`` in float32."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)


def select_precision(device: str, amp: str, *, bf16_supported: bool | None = None) -> Precision:
    """What ``amp`` means on ``device``.

    The CPU always trains in float32 (its path stays what it was, whatever ``amp``
    says). On CUDA: ``auto`` is bf16 where the GPU supports it (no scaler: bf16 has
    float32's range), else fp16 with a grad scaler; ``bf16`` / ``fp16`` as named;
    ``off`` float32.

    Args:
        bf16_supported: whether the GPU has bf16; ``None`` asks torch.

    Raises:
        ValueError: ``amp`` is not one of :data:`AMP_MODES`, or ``bf16`` on a GPU
            without it.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"evaluator.recipe.amp must be one of {AMP_MODES}, but got {amp!r}")
    if not str(device).startswith("cuda") or amp == "off":
        return Precision()
    if bf16_supported is None:
        import torch

        bf16_supported = bool(torch.cuda.is_bf16_supported())
    if amp == "bf16" and not bf16_supported:
        raise ValueError("evaluator.recipe.amp must be 'auto', 'fp16' or 'off' on this GPU "
                         "(it has no bf16), but got 'bf16'")
    if amp == "bf16" or (amp == "auto" and bf16_supported):
        return Precision("bf16", scaler=False)
    return Precision("fp16", scaler=True)


def select_channels_last(device: str, option: bool | str, input_rank: int) -> bool:
    """Whether image batches (4-d: batch, channels, height, width) go NHWC.

    ``auto``: on CUDA only, where convolution kernels prefer it (tensor cores); the CPU
    path is left as it was. Inputs that are not images never do.
    """
    if input_rank != 4:
        return False
    if option == "auto":
        return str(device).startswith("cuda")
    return bool(option)


#: Where the driver trains what a search prepares once (the teacher, the supernet):
#: ``auto`` is a GPU when torch sees one there.
PREPARE_DEVICES = ("auto", "cpu", "cuda")


def check_prepare_device(setting: Any, field: str = "evaluator.prepare_device") -> None:
    """Raise ``ValueError`` naming ``field`` unless ``setting`` is one of
    :data:`PREPARE_DEVICES` (a check of the value alone: nothing asks torch)."""
    if setting not in PREPARE_DEVICES:
        raise ValueError(f"{field} must be one of {PREPARE_DEVICES}, but got {setting!r}")


def select_prepare_device(setting: str, *, field: str = "evaluator.prepare_device",
                          cuda_available: bool | None = None) -> str:
    """``"cuda"`` or ``"cpu"``: where the driver trains for ``setting``.

    Trials get a GPU through ``resources.gpu``; the preparation runs in the driver's
    process, so it takes the driver's GPU when there is one (``auto``), or as told.

    Args:
        cuda_available: whether torch sees a GPU; ``None`` asks torch.

    Raises:
        ValueError: ``setting`` is not one of :data:`PREPARE_DEVICES`, or ``cuda``
            where torch sees no GPU.
    """
    check_prepare_device(setting, field)
    if setting == "cpu":
        return "cpu"
    if cuda_available is None:
        import torch

        cuda_available = bool(torch.cuda.is_available())
    if cuda_available:
        return "cuda"
    if setting == "cuda":
        raise ValueError(f"{field} is 'cuda', but torch sees no GPU on this machine; set "
                         f"it to 'auto' or 'cpu', or run the search where a GPU is")
    return "cpu"
