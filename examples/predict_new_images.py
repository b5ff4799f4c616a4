"""Predict a folder of new images (no CSV, no labels) with a finished run.

python examples/predict_new_images.py            # a couple of minutes on a laptop CPU
python examples/predict_new_images.py --quick    # seconds: what the test suite runs

The CLI does the same: cxrlt predict RUN --images FOLDER --out predictions.csv
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd

import cxrlt
from cxrlt.data.embedded import synthetic_dataset
from cxrlt.options import RunOptions
from cxrlt.workflows.run import run

N_NEW = 5  # unlabelled images the embedded data set sets aside, never trained on


def main(quick: bool) -> pd.DataFrame:
    n_images, size = (160, 32) if quick else (2000, 64)
    data = f"synthetic:n_images={n_images},size={size},n_test={N_NEW}"
    with tempfile.TemporaryDirectory() as work:
        options = RunOptions(
            dataset=data,
            size=size,
            epochs=1 if quick else 8,
            bs=32,
            post="temp-scale,f1-per-class",
            out=Path(work) / "run",
        )
        run_dir, _ = run(options)

        # A folder of new images: here the data set's unlabelled ones, copied.
        folder = Path(work) / "new_images"
        folder.mkdir()
        new = synthetic_dataset(n_images=n_images, size=size, n_test=N_NEW).test
        for path in new["path"]:
            shutil.copy(path, folder)

        # Decoded as the run was trained (size, windowing, letterbox): per image, the
        # calibrated probability and the threshold policy's 0/1 prediction of each class.
        predictions = cxrlt.load_run(run_dir.path).predict(folder)
    print(predictions.iloc[:, :3].round(3).to_string())
    print(f"{len(predictions)} new images; columns {', '.join(predictions.columns[:2])}, ...")
    return predictions


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch")
    main(parser.parse_args().quick)
