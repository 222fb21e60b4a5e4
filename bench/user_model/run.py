"""The user-model path on a model with residuals, depthwise convs and squeeze-excite.

    python bench/user_model/run.py            # writes results.md (a few minutes on 2 cores)
    python bench/user_model/run.py --quick    # 1 pre-training epoch, no file

A MobileNetV3-style model (``usermodel.py``) is pre-trained on mnist5k with a plain torch
loop and saved; then the ``user-model`` space wraps it (the checkpoint is the starting
point and the distillation teacher) and the ``compress-train`` evaluator applies each
compression knob on its own. For every variant: accuracy on the validation split as the
evaluator measured it, the artifact's size, then the artifact is loaded back into a
freshly built model (``artifact_template`` + ``load_artifact``, as ``pick --export``
does) and its validation accuracy measured again: the two must agree.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NONE = {"prune/ratio": 0.0, "prune/importance": "l1", "prune/sparsity": 0.0,
        "quant/bits": 32, "quant/scheme": "symmetric", "quant/activations": 32,
        "lowrank/ratio": 1.0, "distill/alpha": 0.0, "distill/temperature": 4.0,
        "distill/feature_weight": 0.0}
VARIANTS = {
    "none (fine-tuned only)": {},
    "prune 0.5, l1": {"prune/ratio": 0.5},
    "prune 0.5, taylor": {"prune/ratio": 0.5, "prune/importance": "taylor"},
    "prune 0.5, fpgm": {"prune/ratio": 0.5, "prune/importance": "fpgm"},
    "sparsity 0.6": {"prune/sparsity": 0.6},
    "low-rank 0.5": {"lowrank/ratio": 0.5},
    "8-bit symmetric": {"quant/bits": 8},
    "8-bit affine + 8-bit activations": {"quant/bits": 8, "quant/scheme": "affine",
                                         "quant/activations": 8},
    "4-bit symmetric": {"quant/bits": 4},
    "4-bit k-means": {"quant/bits": 4, "quant/scheme": "kmeans"},
    "distill alpha 0.5": {"distill/alpha": 0.5},
    "feature distillation 0.5": {"distill/feature_weight": 0.5},
    "all: prune 0.3, sparsity 0.3, low-rank 0.75, 8-bit, distill": {
        "prune/ratio": 0.3, "prune/sparsity": 0.3, "lowrank/ratio": 0.75, "quant/bits": 8,
        "quant/activations": 8, "distill/alpha": 0.5},
}


def pretrain(path: Path, data, *, epochs: int, seed: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    from usermodel import mobilenet_se

    torch.manual_seed(seed)
    model = mobilenet_se()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * -(-len(x) // 64)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    torch.save(model.state_dict(), path)
    model.eval()
    with torch.no_grad():
        val = float((model(torch.from_numpy(data.x_val)).argmax(1)
                     == torch.from_numpy(data.y_val)).float().mean())
    return {"val_accuracy": val, "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.pretrain_epochs, args.finetune_epochs = 1, 1

    import torch

    from nascompress.compression import load_artifact
    from nascompress.compression.plan import artifact_template
    from nascompress.data import load_mnist5k_splits
    from nascompress.evaluators import CompressTrainEvaluator, Prepared, TrialContext
    from nascompress.spaces import UserModelSpace

    torch.set_num_threads(1)
    data = load_mnist5k_splits()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "user.pt"
        base = pretrain(checkpoint, data, epochs=args.pretrain_epochs, seed=args.seed)
        space = UserModelSpace(model="usermodel:mobilenet_se", checkpoint=str(checkpoint))
        evaluator = CompressTrainEvaluator(
            epochs=1, finetune_epochs=args.finetune_epochs, teacher=space.teacher(), lr=1e-3)
        evaluator.validate()
        shared = Prepared.of(evaluator.prepare(space=space, dataset=data, seed=args.seed,
                                               workdir=Path(tmp))).shared
        for number, (label, change) in enumerate(VARIANTS.items()):
            params = {**NONE, **change}
            folder = Path(tmp) / f"v{number}"
            folder.mkdir()
            started = time.perf_counter()
            result = evaluator.evaluate(params, space=space, dataset=data, context=TrialContext(
                trial_id=f"v{number}", seed=args.seed, artifact_dir=folder, shared=shared))
            seconds = time.perf_counter() - started
            artifact = next(folder.glob("*.nasc"))
            template = artifact_template(space, params, input_shape=data.input_shape,
                                         num_classes=data.num_classes)
            model, _ = load_artifact(artifact, template)
            with torch.no_grad():
                reloaded = float((model(torch.from_numpy(data.x_val)).argmax(1)
                                  == torch.from_numpy(data.y_val)).float().mean())
            rows.append({"label": label, "accuracy": result["accuracy"], "reloaded": reloaded,
                         "size_bytes": result["size_bytes"], "file_bytes": artifact.stat().st_size,
                         "latency_ms": result["latency_ms"], "kind": result["latency_kind"],
                         "params": result.get("params_count"), "seconds": seconds})
            print(f"{label}: acc {result['accuracy']:.4f} reloaded {reloaded:.4f} "
                  f"size {result['size_bytes']:.0f} ({seconds:.0f} s)", flush=True)
    lines = ["| variant | val acc (evaluator) | val acc (artifact reloaded) | size B | "
             "latency ms (kind) | s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        same = "" if abs(r["accuracy"] - r["reloaded"]) < 1e-6 else " **differs**"
        assert r["size_bytes"] == r["file_bytes"], r
        lines.append(f"| {r['label']} | {r['accuracy']:.4f} | {r['reloaded']:.4f}{same} | "
                     f"{r['size_bytes']:.0f} | {r['latency_ms']:.3f} ({r['kind']}) | "
                     f"{r['seconds']:.0f} |")
    reproduced = sum(abs(r["accuracy"] - r["reloaded"]) < 1e-6 for r in rows)
    lines += ["", f"Pre-trained model: val accuracy {base['val_accuracy']:.4f} after "
              f"{args.pretrain_epochs} epochs ({base['seconds']:.0f} s). Accuracy reproduced "
              f"by the reloaded artifact in {reproduced} of {len(rows)} variants; every size "
              "is the artifact file's byte length (checked)."]
    table = "\n".join(lines)
    print(table)
    out = args.out if args.out else (None if args.quick else HERE / "results.md")
    if out:
        header = ["# The user-model path: a MobileNetV3-style model, each knob on its own", "",
                  f"Command: `python bench/user_model/run.py {' '.join(sys.argv[1:])}`".rstrip(),
                  "", f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}. Machine: "
                  f"{platform.platform()}, {os.cpu_count()} cores (load average "
                  f"{os.getloadavg()[0]:.1f} at the end). torch {torch.__version__}. "
                  f"Data: mnist5k (3,500 train / 750 val). Fine-tune "
                  f"{args.finetune_epochs} epochs (lr 1e-3) after 1 epoch of training from "
                  "the checkpoint, seed "
                  f"{args.seed}. The model: 4 stages of inverted residual blocks with "
                  "depthwise 3x3/5x5 convolutions, squeeze-excite in every block, hard-swish "
                  "in the last two stages, residual additions where shapes allow.", ""]
        out.write_text("\n".join(header) + "\n" + table + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0 if reproduced == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
