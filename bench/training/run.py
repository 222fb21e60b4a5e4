"""Training throughput of the pipeline against a minimal hand-written torch loop.

    python bench/training/run.py              # writes results.md (about 5 minutes on 2 cores)
    python bench/training/run.py --quick      # 2 repeats, no file

Model: one mid-sized point of the ``mobilenet`` space on mnist5k (28x28, 3,500 training
images), batch 64, one thread (as a trial runs), CPU unless ``--device cuda``.
Phases, each timed as one epoch:

- ``train``: :func:`nascompress.training.train_epochs` with the evaluator's default recipe
  (Adam, cosine) and its per-batch hook (the latency gate's checkpoint, through a real
  latency client), against a hand loop (forward, cross-entropy, backward, Adam step,
  cosine step) over the same batches;
- ``finetune``: the same, on the model after the compression plan's structure steps and
  QAT preparation (pruned 30 %, 8-bit weights and activations fake-quantized), both loops
  training that same prepared model.

The two loops alternate, ``--repeats`` times each, on fresh copies of the same weights;
the table gives the median images/s with [min, max] and the median of the per-repeat
ratios pipeline / hand loop. On CUDA, ``--amp bf16`` (or fp16) makes both loops use
autocast (and a grad scaler for fp16).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARAMS = {"arch/width_mult": 0.75, **{f"arch/stage{i}/{k}": v for i in range(4)
                                      for k, v in (("depth", 2), ("expand", 4),
                                                   ("kernel", 3), ("se", 1))}}


def hand_loop(model, loader, *, lr: float, device: str, amp: str) -> float:
    """Images/s of the simplest loop a user would write (one epoch)."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = len(loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    # A disabled scaler passes the loss and the step through unchanged.
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    model.train()
    images = 0
    started = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device_type="cuda", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        images += len(y)
    if device == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - started)


def pipeline_loop(model, loader, *, lr: float, device: str, amp: str, gate) -> float:
    from nascompress.training import Recipe, train_epochs

    recipe = Recipe(amp=amp if device == "cuda" else "off")
    with gate.training():
        stats = train_epochs(model, loader, epochs=1, lr=lr, recipe=recipe, device=device,
                             on_batch_end=gate.checkpoint, on_epoch_end=lambda epoch: None)
    return stats.images_per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2

    import torch

    from nascompress.compression.plan import CompressionPlan
    from nascompress.data import load_mnist5k_splits
    from nascompress.latency import LatencyServiceConfig
    from nascompress.latency.connection import open_client
    from nascompress.spaces import MobileNetSpace

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_mnist5k_splits()
    generator = torch.Generator().manual_seed(0)
    loader = data.loader("train", batch_size=args.batch_size, shuffle=True,
                         generator=generator, device=args.device)
    space = MobileNetSpace()
    params = {**PARAMS, "prune/ratio": 0.3, "prune/importance": "l1", "prune/sparsity": 0.0,
              "quant/bits": 8, "quant/scheme": "symmetric", "quant/activations": 8,
              "lowrank/ratio": 1.0, "distill/alpha": 0.0, "distill/temperature": 4.0,
              "distill/feature_weight": 0.0}
    base = space.build_model(params, input_shape=data.input_shape, num_classes=10)
    plan = CompressionPlan.from_params(params)
    example = torch.from_numpy(data.x_train[:16])
    calibration = torch.from_numpy(data.x_train[:256])
    finetuned = copy.deepcopy(base)
    plan.apply_structure_(finetuned, example)
    plan.prepare_finetune_(finetuned, plan.layer_bits(finetuned), calibration=calibration)
    gate = open_client(LatencyServiceConfig(search_key=f"bench-{os.getpid()}"), "bench")
    models = {"train": base, "finetune": finetuned}
    results: dict[str, dict[str, list[float]]] = {p: {"pipeline": [], "hand": []} for p in models}
    for repeat in range(args.repeats):
        for phase, model in models.items():
            order = ("pipeline", "hand") if repeat % 2 == 0 else ("hand", "pipeline")
            for which in order:
                copy_ = copy.deepcopy(model).to(args.device)
                if which == "pipeline":
                    rate = pipeline_loop(copy_, loader, lr=1e-3, device=args.device,
                                         amp=args.amp, gate=gate)
                else:
                    rate = hand_loop(copy_, loader, lr=1e-3, device=args.device, amp=args.amp)
                results[phase][which].append(rate)
                print(f"repeat {repeat} {phase} {which}: {rate:.0f} images/s", flush=True)
    gate.close()
    lines = ["| phase | pipeline images/s, median [min, max] | hand loop images/s | "
             "ratio pipeline / hand, median [min, max] |", "| --- | --- | --- | --- |"]
    verdicts = []
    for phase, rates in results.items():
        ratios = [p / h for p, h in zip(rates["pipeline"], rates["hand"], strict=True)]
        med = statistics.median(ratios)
        verdicts.append(med >= 0.9)
        cell = lambda v: f"{statistics.median(v):.0f} [{min(v):.0f}, {max(v):.0f}]"  # noqa: E731
        lines.append(f"| {phase} | {cell(rates['pipeline'])} | {cell(rates['hand'])} | "
                     f"{med:.3f} [{min(ratios):.3f}, {max(ratios):.3f}] |")
    lines += ["", f"Target: ratio >= 0.9 in both phases: "
              f"{'met' if all(verdicts) else 'MISSED'}."]
    table = "\n".join(lines)
    print(table)
    out = args.out if args.out else (None if args.quick else HERE / "results.md")
    if out:
        device = (torch.cuda.get_device_name() if args.device == "cuda" else "CPU")
        header = ["# Training throughput: the pipeline against a hand-written loop", "",
                  f"Command: `python bench/training/run.py {' '.join(sys.argv[1:])}`".rstrip(),
                  "", f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}. Machine: "
                  f"{platform.platform()}, {os.cpu_count()} cores, device {device}, "
                  f"{args.threads} torch thread(s), load average {os.getloadavg()[0]:.1f} at "
                  f"the end. torch {torch.__version__}. Model: mobilenet space, width 0.75, "
                  "4 stages x 2 blocks, expansion 4, 3x3 depthwise, squeeze-excite; mnist5k "
                  f"train split (3,500 images), batch {args.batch_size}, amp {args.amp}, "
                  f"{args.repeats} repeats of one epoch per loop and phase, alternating.", ""]
        out.write_text("\n".join(header) + "\n" + table + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
