"""Post-training benchmark: what cRT, TTA, calibration and thresholds change after training.

The founding study found that classifier re-training and test-time augmentation help the
ranking metrics while F1 needs calibration and thresholds. Each chain here is one
``cxrlt run`` with the same seed, so training is identical (deterministic on the CPU) and the
rows differ only in what follows it; calibration and thresholds are fitted and scored on
different halves of the validation patients.

    python bench/post_training.py              # ldam-drw, embedded data, 4 chains
    python bench/post_training.py --quick      # tiny smoke check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from rich.console import Console

from cxrlt.options import RunOptions
from cxrlt.workflows.run import run

CHAINS = ("", "crt", "crt,tta:scales=[0.9,1.1]", "crt,tta:scales=[0.9,1.1],temp-scale,f1-per-class")
COLUMNS = ("mAP", "mAUC", "mF1", "ECE", "mAP_tail")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loss", default="ldam-drw")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 epoch (smoke check)")
    args = parser.parse_args(argv)
    base = RunOptions(dataset=args.data, loss=args.loss, epochs=args.epochs, seed=args.seed)
    if args.quick:
        base = dataclasses.replace(
            base, dataset="synthetic:n_images=160,size=32", size=32, bs=32, epochs=1
        )
    chains = CHAINS[::3] if args.quick else CHAINS
    work = Path(tempfile.mkdtemp(prefix="cxrlt-post-"))
    rows = []
    for i, chain in enumerate(chains):
        post = chain.replace("crt", "crt:epochs=1") if args.quick else chain
        options = dataclasses.replace(base, post=post, select="last", out=work / str(i))
        _, report = run(options, Console(quiet=True))
        intervals = report.intervals.overall
        rows.append(
            {
                "post": chain or "(none)",
                **{k: report.overall[k] for k in COLUMNS},
                **{f"{k}_ci": list(intervals[k]) for k in COLUMNS},
            }
        )
    lines = [
        f"{args.loss}, {base.arch}, {base.epochs} epochs on {base.dataset}, seed {args.seed}",
        "",
        "| post | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
        *(
            f"| `{row['post']}` | "
            + " | ".join(
                f"{row[k]:.3f} [{row[k + '_ci'][0]:.3f}, {row[k + '_ci'][1]:.3f}]" for k in COLUMNS
            )
            + " |"
            for row in rows
        ),
    ]
    table = "\n".join(lines)
    Console().print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    figures = {"rows": rows, "table": table}
    (args.out / "post_training.json").write_text(json.dumps(figures, indent=2) + "\n")
    (args.out / "post_training.md").write_text(table + "\n")
    return figures


if __name__ == "__main__":
    main()
