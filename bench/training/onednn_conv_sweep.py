"""Which CPU convolutions abort the process in their backward over channels-last inputs.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/training/onednn_conv_sweep.py  # onednn_conv_sweep.md

Why: on an AMD EPYC with torch 2.13.0+cpu, oneDNN's backward of a 1x1 stride-2
convolution over a channels-last input with 4 input channels corrupted the heap and
aborted the test process (the resnet supernet's shortcut, then a finalist's fine-tune).
The built-in trainer, the supernet trainer and the call of a user's training function
therefore run under :func:`nascompress.training.loop.nchw_strided_pointwise`, which gives
every strided 1x1 ``nn.Conv2d`` an NCHW input on the CPU. This sweep says which shapes
crash on the machine it runs on, and whether the guard keeps each crashing shape alive.

Each shape runs in its own process (a corrupted heap can fail later, elsewhere): a
forward and backward of ``F.conv2d`` over a random channels-last ``(batch, cin, hw, hw)``
input, repeated; the exit status is recorded (0: fine; a negative one is the signal
that killed it: -6 SIGABRT, -8 SIGFPE, -11 SIGSEGV). Every shape that crashed is then
run again as an ``nn.Conv2d`` inside the guard.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: (cin, cout, kernel, stride, hw, groups, batch)
Shape = tuple[int, int, int, int, int, int, int]


def shapes() -> list[Shape]:
    """Dense 1x1 and 3x3 convolutions with few input channels, strides 1 and 2; depthwise
    3x3 and 5x5; then 1x1 with more input channels, other strides, batches and sizes; and
    patchifying 2x2 / 4x4 convolutions."""
    out: list[Shape] = []
    for k in (1, 3):
        for s in (2, 1):
            for cin in (1, 2, 3, 4, 8):
                for cout in (2, 4, 8, 16):
                    for hw in (8, 14):
                        out.append((cin, cout, k, s, hw, 1, 64))
    for k in (3, 5):
        for s in (2, 1):
            for c in (2, 4, 8, 16, 24):
                for hw in (8, 14):
                    out.append((c, c, k, s, hw, c, 64))
    out += [(cin, 8, 1, 2, 8, 1, 64) for cin in (5, 6, 7, 12, 16)]
    out += [(4, 8, 1, 2, 8, 1, b) for b in (1, 8, 256)]
    out += [(4, 8, 1, 2, 28, 1, 64), (3, 16, 1, 2, 28, 1, 64), (4, 8, 1, 3, 9, 1, 64),
            (4, 8, 1, 4, 8, 1, 64)]
    for cin in (1, 3, 4, 8):
        out += [(cin, 16, 2, 2, 8, 1, 64), (cin, 16, 4, 4, 8, 1, 64)]
    return out


def run_one(shape: Shape, *, repeats: int, guarded: bool) -> None:
    """The child: forward and backward ``repeats`` times; returns only if nothing crashed."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from nascompress.training.loop import nchw_strided_pointwise

    torch.set_num_threads(1)
    cin, cout, k, s, hw, groups, batch = shape
    padding = k // 2 if k % 2 else 0
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=padding, groups=groups, bias=False)
    for _ in range(repeats):
        x = torch.randn(batch, cin, hw, hw).to(memory_format=torch.channels_last)
        x.requires_grad_()
        if guarded:
            with nchw_strided_pointwise(conv, "cpu"):
                conv(x).sum().backward()
        else:
            F.conv2d(x, conv.weight, stride=s, padding=padding, groups=groups).sum().backward()


def status(shape: Shape, *, repeats: int, guarded: bool) -> int:
    argv = [sys.executable, __file__, "--one", ",".join(map(str, shape)),
            "--repeats", str(repeats)] + (["--guarded"] if guarded else [])
    try:
        return subprocess.run(argv, cwd=REPO, capture_output=True, timeout=300).returncode
    except subprocess.TimeoutExpired:
        return -1


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--guarded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", default=str(HERE / "onednn_conv_sweep.md"))
    args = parser.parse_args(argv)
    if args.one:
        run_one(tuple(int(v) for v in args.one.split(",")), repeats=args.repeats,
                guarded=args.guarded)
        return 0

    import torch

    started = time.time()
    rows = []
    for shape in shapes():
        code = status(shape, repeats=args.repeats, guarded=False)
        guarded = status(shape, repeats=args.repeats, guarded=True) if code else None
        rows.append((shape, code, guarded))
        print(shape, code, guarded, flush=True)
    crashed = [r for r in rows if r[1]]
    lines = [
        "# oneDNN convolution backward over channels-last inputs: which shapes crash", "",
        f"Command: `PYTHONPATH=. .venv/bin/python {' '.join(sys.argv)}`; "
        f"{time.strftime('%Y-%m-%d')}; {cpu_name()}, torch {torch.__version__}, python "
        f"{platform.python_version()}; {args.repeats} forward+backward passes per shape, "
        f"one process each; {time.time() - started:.0f} s.", "",
        "\n\n".join(__doc__.split("\n\n")[3:]).strip(), "",
        f"**{len(crashed)} of {len(rows)} shapes crashed**; under the guard "
        f"{sum(1 for r in crashed if r[2] == 0)} of those ran clean.", "",
        "| cin | cout | kernel | stride | hw | groups | batch | exit status | guarded |",
        "|---|---|---|---|---|---|---|---|---|"]
    for (cin, cout, k, s, hw, groups, batch), code, guarded in rows:
        lines.append(f"| {cin} | {cout} | {k} | {s} | {hw} | {groups} | {batch} | "
                     f"{'**' + str(code) + '**' if code else 0} | "
                     f"{'-' if guarded is None else guarded} |")
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
