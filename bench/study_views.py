"""Study-views benchmark: what merging the predictions of a study's two views changes.

One model is trained on the embedded data's two-view studies (``synthetic:views=2``: a PA or AP
film and a lateral per study, the lateral the weaker witness); the same model is then
post-trained with ``--from-run`` and each merge method, so the rows differ only by the merge.
Each row after the first carries its paired bootstrap difference from the unmerged one (the same
patient resamples).

    python bench/study_views.py              # 800 images at 64 px, 4 epochs (~10 min, 2 cores)
    python bench/study_views.py --quick      # tiny smoke check, not figures
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from rich.console import Console

from cxrlt.options import RunOptions
from cxrlt.outputs.report import compare_runs
from cxrlt.workflows.run import run

METHODS = ("mean", "max", "weighted")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=800)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--quick", action="store_true", help="tiny data, 1 epoch (smoke check)")
    args = parser.parse_args(argv)
    n_images, size, epochs = (120, 32, 1) if args.quick else (args.n_images, args.size, args.epochs)
    data = f"synthetic:n_images={n_images},size={size},views=2"
    work = Path(tempfile.mkdtemp(prefix="cxrlt-views-"))
    base = RunOptions(dataset=data, size=size, epochs=epochs, seed=args.seed, out=work / "none")
    run(base, Console(quiet=True))
    paths = [base.out]
    for method in METHODS:
        merged = dataclasses.replace(
            base, from_run=str(base.out), post=f"study-views:method={method}", out=work / method
        )
        run(merged, Console(quiet=True))
        paths.append(merged.out)
    table, notes = compare_runs(paths)
    rows = [
        {
            "post": "(none)" if i == 0 else f"study-views:method={METHODS[i - 1]}",
            "mAP": row["mAP"],
            "mAP_ci": [row["mAP_low"], row["mAP_high"]],
            **(
                {
                    "mAP_diff": row["mAP_diff"],
                    "mAP_diff_ci": [row["mAP_diff_low"], row["mAP_diff_high"]],
                }
                if i
                else {}
            ),
        }
        for i, (_, row) in enumerate(table.iterrows())
    ]
    lines = [
        f"{base.arch}, {epochs} epochs on {data}, seed {args.seed}; the same trained model in "
        "every row",
        "",
        "| post | mAP | difference from (none), paired |",
        "|---|---|---|",
        *(
            f"| `{row['post']}` | {row['mAP']:.3f} [{row['mAP_ci'][0]:.3f}, {row['mAP_ci'][1]:.3f}]"
            + (
                f" | {row['mAP_diff']:+.3f} [{row['mAP_diff_ci'][0]:+.3f}, "
                f"{row['mAP_diff_ci'][1]:+.3f}] |"
                if "mAP_diff" in row
                else " | |"
            )
            for row in rows
        ),
        *notes,
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "study_views.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
        (args.out / "study_views.md").write_text(text + "\n")
    return {"rows": rows, "table": text}


if __name__ == "__main__":
    main()
