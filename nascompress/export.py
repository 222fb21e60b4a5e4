"""Deployable exports of a picked trial, each with a manifest of what it is and how it scores.

:func:`export_pick` rebuilds the compressed model from the trial's artifact
(``models/<trial_id>.nasc``; no pickle is read), re-checks it on the held-out **test**
split by running the exported file itself, and writes two files:

* ``<out>``: the model, in one of three formats:

  - ``onnx``: float ONNX graph (BatchNorm folded, dynamic batch), input ``"input"``,
    output ``"logits"``; runs with plain ``onnxruntime``.
  - ``torchscript``: a traced module (activation quantizers included); loads with plain
    ``torch.jit.load``. torch 2.10+ deprecates TorchScript (still present in 2.13); prefer
    ``onnx`` for new deployments.
  - ``state_dict``: ``torch.save`` of the plain ``state_dict`` (tensors only; loads with
    ``torch.load(path, weights_only=True)``). The layers are pruned, so a freshly built
    model has the wrong shapes: :func:`load_state_dict_export` rebuilds the architecture
    from the manifest and resizes its layers; the manifest's ``architecture`` section holds
    everything needed to do that by hand (space, params, every tensor's shape, activation
    quantizer parameters).

* ``<out>.manifest.json`` (the export's full file name plus ``.manifest.json``, e.g.
  ``model.onnx.manifest.json``): source run and trial, params, the validation objectives
  of the search, the test accuracy of the exported file, preprocessing, class count,
  versions and the sha256 of the exported file.

Quantized weights are exported as their dequantized float values: the numbers are exactly
those of the artifact, but the file stores them as float32 (the artifact is the small one).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nascompress import __version__
from nascompress.compression.plan import artifact_template

__all__ = [
    "FORMATS",
    "ExportError",
    "Manifest",
    "build_space",
    "export_pick",
    "load_dataset_for_run",
    "load_state_dict_export",
    "manifest_path_for",
    "rebuild_model",
]

#: Export formats and their default file suffixes.
FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "state_dict": ".pt"}
MANIFEST_SUFFIX = ".manifest.json"


class ExportError(ValueError):
    """The run folder or the record cannot be exported; the message names the field."""


@dataclass
class Manifest:
    """What an export is, where it came from and how it scores; see the module docstring.

    Attributes:
        format: ``"onnx"``, ``"torchscript"`` or ``"state_dict"``.
        file: the exported file's name (the manifest sits next to it).
        sha256: hex digest of the exported file.
        size_bytes: byte length of the exported file.
        test_accuracy: top-1 accuracy on the test split, measured by running the exported
            file (onnxruntime / ``torch.jit`` / the model rebuilt from the saved
            ``state_dict``).
        test: split name, example count, what ran it, and the accuracy of the model
            rebuilt from the artifact in torch, for comparison.
        objectives: the search's objective values for this trial; accuracy there is on the
            validation split (``objectives_split``), unlike ``test_accuracy``.
        params: the trial's flat parameters.
        num_classes: number of output logits.
        input: input name, shape (``None`` for the dynamic batch), dtype and layout.
        preprocessing: the dataset's preprocessing (scale, layout, dtype, split) and the
            input shape; inputs must be prepared this way.
        source: run name and folder, trial number and id, artifact name and sha256.
        architecture: how to rebuild the model: space (name, class, options, dimensions),
            params, input shape, class count, weight bits, tensor shapes, activation
            quantizers.
        versions: nascompress, python, torch and, when used, onnx / onnxruntime.
        created_at: Unix time of the export.
        manifest_path: where the manifest was written (not part of the JSON).
    """

    format: str
    file: str
    sha256: str
    size_bytes: int
    test_accuracy: float
    test: dict[str, Any]
    objectives: dict[str, Any]
    params: dict[str, Any]
    num_classes: int
    input: dict[str, Any]
    preprocessing: dict[str, Any]
    source: dict[str, Any]
    architecture: dict[str, Any]
    versions: dict[str, str]
    objectives_split: str = "validation"
    created_at: float = field(default_factory=time.time)
    manifest_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON written to the manifest file."""
        data = asdict(self)
        data.pop("manifest_path")
        return data

    @classmethod
    def read(cls, path: str | os.PathLike) -> Manifest:
        """Read a manifest file written by :func:`export_pick`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**data, manifest_path=Path(path))


def manifest_path_for(out: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.onnx.manifest.json``."""
    out = Path(out)
    return out.with_name(out.name + MANIFEST_SUFFIX)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- rebuild


def build_space(run: Mapping[str, Any]):
    """The run's search space, constructed as the search constructed it.

    The space class is looked up by the name recorded in ``run.json`` (``space.name``),
    falling back to the configured name (which may be an import path) and the recorded
    class path. It is constructed with the configured options (``config.space.options``,
    e.g. ``min_channels``) and the recorded dimensions, so a space with required options
    builds the same models as during the search.

    Args:
        run: the content of ``run.json``.

    Raises:
        ExportError: the space cannot be found or constructed.
    """
    from nascompress.registry import RegistryError
    from nascompress.spaces import SPACES

    recorded = run.get("space") or {}
    configured = (run.get("config") or {}).get("space") or {}
    names = [recorded.get("name"), configured.get("name"), recorded.get("class")]
    names = [n for n in dict.fromkeys(names) if isinstance(n, str) and n]
    if not names:
        raise ExportError("run.json: space.name is missing; cannot rebuild the model")
    space_cls, problems = None, []
    for name in names:
        try:
            space_cls = SPACES.resolve(name, field="space.name")
            break
        except RegistryError as exc:
            problems.append(str(exc))
    if space_cls is None:
        raise ExportError(f"run.json: cannot find the run's space: {problems[0]}")
    options = dict(configured.get("options") or {})
    if recorded.get("dimensions"):
        options["dimensions"] = recorded["dimensions"]
    try:
        return space_cls(**options)
    except (TypeError, ValueError) as exc:
        raise ExportError(
            f"run.json: space {names[0]!r} cannot be constructed with the recorded options "
            f"{sorted(options)}: {exc}"
        ) from None


def load_dataset_for_run(run: Mapping[str, Any]):
    """The run's dataset (same name and options, hence the same split).

    Raises:
        ExportError: the dataset cannot be found or loaded with the recorded options.
    """
    from nascompress.data import DATASETS
    from nascompress.registry import RegistryError

    configured = (run.get("config") or {}).get("dataset") or {}
    name = configured.get("name") or (run.get("dataset") or {}).get("name")
    if not name:
        raise ExportError("run.json: config.dataset.name is missing; cannot load the test split")
    options = dict(configured.get("options") or {})
    try:
        return DATASETS.resolve(name, field="config.dataset.name")(**options)
    except RegistryError as exc:
        raise ExportError(f"run.json: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ExportError(
            f"run.json: dataset {name!r} cannot be loaded with options {options!r}: {exc}"
        ) from None


def _artifact_path(run_dir: Path, record: Mapping[str, Any]) -> Path:
    name = (record.get("metrics") or {}).get("artifact")
    trial = f"trial {record.get('number')} ({record.get('trial_id')})"
    if not isinstance(name, str) or not name:
        raise ExportError(f"record: {trial} has no metrics.artifact; nothing to export")
    # The name comes from a file we did not write ourselves: keep it inside models/.
    if Path(name).name != name or name in (".", ".."):
        raise ExportError(f"record: metrics.artifact must be a plain file name, but got {name!r}")
    path = run_dir / "models" / name
    if not path.is_file():
        raise ExportError(f"record: the artifact of {trial} is missing: {str(path)!r}")
    return path


def rebuild_model(run_dir: str | os.PathLike, record: Mapping[str, Any], *, run=None,
                  dataset=None):
    """The trial's compressed model, rebuilt from its artifact (no pickle involved).

    Args:
        run_dir: the run folder.
        record: the trial record (``trials.jsonl`` line).
        run: ``run.json`` content, when already read.
        dataset: the run's dataset, when already loaded.

    Returns:
        ``(model, metadata, space, dataset)``; the model is in eval mode on the CPU.

    Raises:
        ExportError: the artifact is missing or does not belong to the record.
    """
    from nascompress.compression.artifact import load_artifact
    from nascompress.search.records import RunDirectory

    run_dir = Path(run_dir)
    if run is None:
        try:
            run = RunDirectory(run_dir).read_run()
        except FileNotFoundError as exc:
            raise ExportError(f"run_dir: {exc}") from None
    path = _artifact_path(run_dir, record)
    space = build_space(run)
    dataset = dataset if dataset is not None else load_dataset_for_run(run)
    params = dict(record.get("params") or {})
    try:
        # Same layer structure as the artifact (low-rank factorized layers included).
        template = artifact_template(space, params, input_shape=dataset.input_shape,
                                     num_classes=dataset.num_classes)
        model, metadata = load_artifact(path, template)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(
            f"record: cannot rebuild trial {record.get('number')} from {path.name}: {exc}"
        ) from None
    # The artifact carries its own description: a mismatch means the files were mixed up.
    stored_params = metadata.get("params")
    if stored_params is not None and stored_params != params:
        raise ExportError(
            f"record: {path.name} holds params {stored_params!r}, but trial "
            f"{record.get('number')} has {params!r}"
        )
    for key, actual in (("input_shape", list(dataset.input_shape)),
                        ("num_classes", dataset.num_classes)):
        if key in metadata and metadata[key] != actual:
            raise ExportError(
                f"record: {path.name} was built for {key}={metadata[key]!r}, but the run's "
                f"dataset has {key}={actual!r}"
            )
    return model, metadata, space, dataset


def _loader_accuracy(count_correct, loader) -> tuple[float, int]:
    """Top-1 accuracy over ``loader``'s batches (streamed, never gathered), and the number
    of examples; ``count_correct(inputs, labels)`` takes float32 / integer arrays."""
    import numpy as np

    correct, total = 0, 0
    for inputs, labels in loader:
        inputs = np.asarray(inputs, dtype=np.float32)
        labels = np.asarray(labels)
        correct += int(count_correct(inputs, labels))
        total += len(labels)
    if not total:
        raise ExportError("dataset: the test split yielded no examples")
    return correct / total, total


def _torch_accuracy(model, loader, *, with_count: bool = False):
    import torch

    def count_correct(inputs, labels):
        with torch.no_grad():
            return (model(torch.from_numpy(inputs)).argmax(dim=1).numpy() == labels).sum()

    accuracy, count = _loader_accuracy(count_correct, loader)
    return (accuracy, count) if with_count else accuracy


def _resize_and_load(model, state: Mapping[str, Any]) -> None:
    """Give ``model``'s layers the shapes of ``state`` and load it (pruned layers shrink)."""
    import torch
    from torch import nn

    expected = set(model.state_dict())
    if set(state) != expected:
        raise ExportError(
            f"state_dict: keys do not match the rebuilt architecture: missing "
            f"{sorted(expected - set(state))}, unexpected {sorted(set(state) - expected)}"
        )
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        own = {k: state[prefix + k] for k, _ in
               list(module.named_parameters(recurse=False))
               + list(module.named_buffers(recurse=False))
               if prefix + k in state}
        if not own:
            continue
        if isinstance(module, nn.modules.conv._ConvNd) and "weight" in own:
            shape = own["weight"].shape
            if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
                module.in_channels = module.out_channels = module.groups = shape[0]
            elif module.transposed:
                module.in_channels, module.out_channels = shape[0], shape[1] * module.groups
            else:
                module.out_channels, module.in_channels = shape[0], shape[1] * module.groups
        elif isinstance(module, nn.Linear) and "weight" in own:
            module.out_features, module.in_features = own["weight"].shape
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.num_features = next(t for t in own.values() if t.dim() > 0).shape[0]
        params = dict(module.named_parameters(recurse=False))
        for key, tensor in own.items():
            if key in params:
                setattr(module, key, nn.Parameter(tensor.clone(), requires_grad=False))
            else:
                setattr(module, key, torch.as_tensor(tensor).clone())


def _model_from_state_dict(path: str | os.PathLike, architecture: Mapping[str, Any]):
    """Build the architecture, resize it to the saved tensors, load them (no unpickling)."""
    import torch

    from nascompress.compression.quantization import install_activation_quant

    space_info = architecture["space"]
    space = build_space({"space": space_info,
                         "config": {"space": {"name": space_info.get("name"),
                                              "options": space_info.get("options") or {}}}})
    model = artifact_template(space, dict(architecture["params"]),
                              input_shape=tuple(architecture["input_shape"]),
                              num_classes=int(architecture["num_classes"]))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ExportError(f"path: {str(path)!r} does not hold a state_dict (a mapping)")
    _resize_and_load(model, state)
    if architecture.get("activation_quant"):
        install_activation_quant(model, architecture["activation_quant"])
    return model.eval()


def load_state_dict_export(
    path: str | os.PathLike, manifest: Manifest | str | os.PathLike | None = None
):
    """Rebuild the model of a ``state_dict`` export (``torch.load(weights_only=True)`` only).

    Args:
        path: the exported ``.pt`` file.
        manifest: its :class:`Manifest`, or the manifest's path; default
            ``<path>.manifest.json``.

    Returns:
        The model in eval mode, activation quantizers re-installed.

    Raises:
        ExportError: the manifest is not a ``state_dict`` export or does not match the file.
    """
    if manifest is None:
        manifest = manifest_path_for(path)
    if not isinstance(manifest, Manifest):
        manifest = Manifest.read(manifest)
    if manifest.format != "state_dict":
        raise ExportError(
            f"manifest: format must be 'state_dict' to rebuild from weights, but got "
            f"{manifest.format!r}"
        )
    return _model_from_state_dict(path, manifest.architecture)


# --------------------------------------------------------------------------- export


def _write_format(model, example, out: Path, fmt: str, test_loader, architecture):
    """Write ``out`` and measure the test accuracy by running the written file."""
    import torch

    versions: dict[str, str] = {}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        from nascompress.compression.onnx_export import export_onnx, onnx_accuracy, ort_session

        export_onnx(model, example, out)
        session = ort_session(out)
        # onnx_accuracy handles models exported with a fixed batch size; its fraction
        # times the batch's length is the batch's exact count of hits.
        accuracy = _loader_accuracy(
            lambda inputs, labels: round(onnx_accuracy(session, inputs, labels) * len(labels)),
            test_loader)[0]
        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
        runner = f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider"
    elif fmt == "torchscript":
        # torch >= 2.10 deprecates TorchScript in favour of torch.export; the user asked for
        # a TorchScript file, so the warning would only repeat what they chose.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, example, check_trace=True)
            traced.save(str(out))
            loaded = torch.jit.load(str(out), map_location="cpu").eval()
        accuracy = _torch_accuracy(loaded, test_loader)
        runner = f"torch.jit.load (torch {torch.__version__})"
    else:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out)
        rebuilt = _model_from_state_dict(out, architecture)
        accuracy = _torch_accuracy(rebuilt, test_loader)
        runner = (f"model rebuilt from the saved state_dict with torch.load(weights_only=True)"
                  f" (torch {torch.__version__})")
    return accuracy, runner, versions


def export_pick(
    run_dir: str | os.PathLike,
    record: Mapping[str, Any],
    *,
    format: str,
    out: str | os.PathLike,
) -> Manifest:
    """Export one trial's compressed model and write its manifest next to it.

    Args:
        run_dir: the run folder (``results/<run>``).
        record: the trial record to export (e.g. ``pick(...).chosen``).
        format: ``"onnx"``, ``"torchscript"`` or ``"state_dict"``.
        out: the file to write (an existing file is replaced); missing parent folders
            are created. An existing folder gets ``<trial_id><suffix>`` inside it. The
            manifest goes to ``<out>.manifest.json``.

    Returns:
        The manifest (also written to disk; ``manifest.manifest_path`` says where).

    Raises:
        ExportError: bad ``format``, missing run files or artifact, or an artifact that
            does not match the record or the run's space.
        ImportError: ``format="onnx"`` without onnx / onnxruntime installed.
    """
    import torch

    from nascompress.compression.quantization import activation_quant_params
    from nascompress.search.records import RunDirectory

    if format not in FORMATS:
        raise ExportError(f"format must be one of {sorted(FORMATS)}, but got {format!r}")
    if not isinstance(record, Mapping) or record.get("state") != "COMPLETE":
        state = record.get("state") if isinstance(record, Mapping) else type(record).__name__
        raise ExportError(f"record: only COMPLETE trials can be exported, but got state={state!r}")
    run_dir = Path(run_dir)
    try:
        run = RunDirectory(run_dir).read_run()
    except FileNotFoundError as exc:
        raise ExportError(f"run_dir: {exc}") from None
    out = Path(out)
    if out.is_dir():
        out = out / f"{record.get('trial_id')}{FORMATS[format]}"
    out.parent.mkdir(parents=True, exist_ok=True)

    model, metadata, space, dataset = rebuild_model(run_dir, record, run=run)
    from nascompress.data import eval_batch_size, take

    test_loader = dataset.loader("test", batch_size=eval_batch_size(tuple(dataset.input_shape)))
    reference_accuracy, test_examples = _torch_accuracy(model, test_loader, with_count=True)
    example = take(dataset.loader("test", batch_size=1), 1)[0].float().clone()
    architecture = {
        "space": {**space.to_dict(),
                  "options": dict(((run.get("config") or {}).get("space") or {})
                                  .get("options") or {})},
        "params": dict(record.get("params") or {}),
        "input_shape": list(dataset.input_shape),
        "num_classes": int(dataset.num_classes),
        "bits": metadata.get("bits"),
        "tensor_shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
        "activation_quant": activation_quant_params(model),
    }
    accuracy, runner, extra_versions = _write_format(
        model, example, out, format, test_loader, architecture
    )
    artifact = _artifact_path(run_dir, record)
    preprocessing = {**dict(dataset.preprocessing), "input_shape": list(dataset.input_shape)}
    manifest = Manifest(
        format=format,
        file=out.name,
        sha256=_sha256(out),
        size_bytes=out.stat().st_size,
        test_accuracy=accuracy,
        test={"split": "test", "examples": test_examples, "measured_with": runner,
              "artifact_accuracy_torch": reference_accuracy},
        objectives=dict(record.get("objectives") or {}),
        params=dict(record.get("params") or {}),
        num_classes=int(dataset.num_classes),
        input={"name": "input" if format == "onnx" else None,
               "shape": [None, *dataset.input_shape],
               "dtype": "float32",
               "layout": dataset.preprocessing.get("layout")},
        preprocessing=preprocessing,
        source={"run": run.get("name"), "run_dir": str(run_dir.resolve()),
                "trial_number": record.get("number"), "trial_id": record.get("trial_id"),
                "artifact": f"models/{artifact.name}", "artifact_sha256": _sha256(artifact),
                "artifact_bytes": artifact.stat().st_size},
        architecture=architecture,
        versions={"nascompress": __version__, "python": platform.python_version(),
                  "torch": torch.__version__, **extra_versions},
    )
    path = manifest_path_for(out)
    from nascompress.search.records import write_atomic

    write_atomic(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    manifest.manifest_path = path
    return manifest
