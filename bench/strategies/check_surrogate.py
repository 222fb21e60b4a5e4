"""Check the surrogate's tables against the real ``compress-train`` evaluator.

Runs the evaluator (2 training epochs, 1 fine-tuning epoch: sizes and latencies do not
depend on training) on the seven calibration configurations and prints, for each, the
artifact size and latency it measured next to the surrogate's. Sizes must be equal;
latencies differ by measurement noise. Run it after a change to the evaluator, the
artifact format or the space, and rebuild the tables (``python surrogate.py``) when it
disagrees::

    .venv/bin/python bench/strategies/check_surrogate.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from surrogate import CALIBRATION, Surrogate, _evaluator_params, bench_space

from nascompress.data import load_digits_splits
from nascompress.evaluators._base import TrialContext
from nascompress.evaluators.compress_train import CompressTrainEvaluator


def main() -> int:
    space = bench_space()
    surrogate = Surrogate()
    data = load_digits_splits()
    evaluator = CompressTrainEvaluator(epochs=2, finetune_epochs=1, teacher_epochs=2)
    evaluator.validate()
    mismatches = 0
    print(f"{'depth, width, kernel, ratio, bits, alpha':<42} {'size':>7} {'table':>7} "
          f"{'latency_ms':>10} {'table':>7}  kind")
    with tempfile.TemporaryDirectory() as tmp:
        shared = evaluator.prepare(space=space, dataset=data, seed=0, workdir=Path(tmp)).shared
        for (depth, width, kernel, ratio, bits, alpha), _ in CALIBRATION:
            params = _evaluator_params(
                space, **{"arch/depth": depth, "arch/width": width, "arch/kernel": kernel,
                          "prune/ratio": ratio, "quant/bits": bits, "distill/alpha": alpha,
                          "distill/temperature": 4.0})
            context = TrialContext(trial_id="check", seed=0, artifact_dir=Path(tmp) / "a",
                                   shared=shared)
            real = evaluator.evaluate(params, space=space, dataset=data, context=context)
            table = surrogate.true_objectives(params)
            mismatches += real["size_bytes"] != table["size_bytes"]
            label = f"{depth}, {width}, {kernel}, {ratio}, {bits}, {alpha}"
            print(f"{label:<42} {real['size_bytes']:>7.0f} {table['size_bytes']:>7.0f} "
                  f"{real['latency_ms']:>10.4f} {table['latency_ms']:>7.4f}  "
                  f"{real.get('latency_kind', '')}")
    print("sizes: all equal" if not mismatches else f"sizes: {mismatches} differ")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
