"""Supernet training throughput against a plain training loop of its largest subnet.

    python bench/supernet/throughput.py                      # CPU, 1 thread, mnist5k
    python bench/supernet/throughput.py --device cuda --batch-size 256 --epochs 5
    python bench/supernet/throughput.py --out bench/supernet/results.md

The issue's GPU evidence: images per second of supernet training against a plain
training loop of the largest subnet on the same device, same data, batch size and
arithmetic.

- **supernet**: :func:`nascompress.supernet.training.train_supernet` as a weight-sharing
  search runs it (the ``supernet`` evaluator's defaults: one warm-up epoch of the
  largest network alone, then the sandwich rule: largest, smallest and two random
  subnets per step with in-place distillation), over the default ``mobilenet`` space
  with its shared quantization knobs (``run.py --joint``'s space). Each epoch's
  images/s comes from the epoch's own training time, which the supernet records before
  its per-epoch validation. The warm-up epoch (one network per step, through the
  elastic layers) and the sandwich epochs (four per step) are shown apart.
- **plain loop**: the largest subnet extracted as a real model and trained by the
  pipeline's built-in trainer (:func:`nascompress.training.train_epochs`, what a
  stand-alone trial runs: Adam, cosine, the recipe's mixed precision and, on CUDA,
  ``channels_last``), one call per epoch.

Images/s counts training images; a sandwich step pushes each image through four
subnets, so "subnet-images/s" (x4) says how hard the supernet loop works. Median over
the timed epochs with [min, max]; the first plain epoch is a warm-up and not counted
(on CUDA it carries cuDNN's kernel choice). Every figure is measured by this script.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import bench_space  # noqa: E402


def measure(*, dataset_name: str, device: str, amp: str, batch_size: int, epochs: int,
            threads: int, seed: int = 0) -> dict:
    """Train the supernet (1 warm-up + ``epochs`` sandwich epochs) and the largest subnet
    (1 + ``epochs`` plain epochs); return per-epoch images/s of each."""
    import torch

    from nascompress.data import DATASETS
    from nascompress.supernet.training import SupernetOptions, load_supernet, train_supernet
    from nascompress.training import Recipe, train_epochs

    torch.set_num_threads(threads)
    dataset = DATASETS.resolve(dataset_name, field="dataset")()
    space = bench_space(joint=True)
    options = SupernetOptions(epochs=1 + epochs, warmup_epochs=1, batch_size=batch_size,
                              device=device, amp=amp, threads=threads)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as work:
        result = train_supernet(space, dataset, options=options, seed=seed, directory=work,
                                stream=sys.stdout)
        net = load_supernet(result.path, space, dataset)
        largest = net.extract(net.largest()).to(device)
    history = result.history
    warmup = [h["images"] / h["seconds"] for h in history if not h["elastic"]]
    sandwich = [h["images"] / h["seconds"] for h in history if h["elastic"]]

    recipe = Recipe(amp=amp)
    plain = []
    for epoch in range(1 + epochs):
        loader = dataset.loader("train", batch_size=batch_size, shuffle=True,
                                generator=torch.Generator().manual_seed(seed + epoch),
                                device=device)
        stats = train_epochs(largest, loader, epochs=1, lr=options.lr, recipe=recipe,
                             device=device)
        if epoch:  # the first one warms up (allocator, cuDNN's choice of kernels)
            plain.append(stats.images / stats.seconds)
    return {"dataset": dataset_name, "device": device,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "precision": history[-1]["precision"], "batch_size": batch_size,
            "epochs": epochs, "threads": threads,
            "train_images": history[-1]["images"],
            "supernet_warmup": warmup, "supernet_sandwich": sandwich, "plain": plain,
            "supernet_ran_on": sorted({(h["device"], h["precision"]) for h in history}),
            "params_largest": sum(p.numel() for p in largest.parameters())}


def _spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.0f} [{min(values):.0f}, {max(values):.0f}]"
            if values else "n/a")


def table(figures: dict, command: str) -> str:
    plain = statistics.median(figures["plain"])
    sandwich = statistics.median(figures["supernet_sandwich"])
    warm = statistics.median(figures["supernet_warmup"])
    where = (f"GPU {figures['gpu']}" if figures["gpu"]
             else f"CPU ({platform.machine()}, torch threads {figures['threads']})")
    lines = [
        f"### Supernet training throughput against a plain loop of the largest subnet, "
        f"{figures['dataset']}, {where}", "",
        f"{time.strftime('%Y-%m-%d')}. Command: `{command}`. Batch {figures['batch_size']}, "
        f"{figures['precision']}, {figures['train_images']} training images per epoch, "
        f"{figures['epochs']} timed epochs per arm; largest subnet "
        f"{figures['params_largest']:,} parameters.", "",
        "| loop | images/s, median [min, max] | subnet-images/s | against the plain loop |",
        "|---|---|---|---|",
        f"| plain loop, largest subnet (`train_epochs`) | {_spread(figures['plain'])} "
        f"| {plain:.0f} | 1.00 |",
        f"| supernet, warm-up epoch (largest alone) | {_spread(figures['supernet_warmup'])} "
        f"| {warm:.0f} | {warm / plain:.2f} |",
        f"| supernet, sandwich epochs (largest, smallest, 2 random) "
        f"| {_spread(figures['supernet_sandwich'])} | {4 * sandwich:.0f} "
        f"| {sandwich / plain:.2f} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: cuda when torch sees a GPU, else cpu")
    parser.add_argument("--amp", default="auto", help="the recipe's amp (CUDA only)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per arm")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--out", default=None, help="append the table to this file")
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    figures = measure(dataset_name=args.dataset, device=device, amp=args.amp,
                      batch_size=args.batch_size, epochs=args.epochs, threads=args.threads)
    text = table(figures, "python " + " ".join(["bench/supernet/throughput.py",
                                                 *(argv if argv is not None
                                                   else sys.argv[1:])]))
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
