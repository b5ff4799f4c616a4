"""Export a trained Learner to one file, reload it and predict a new image.

python examples/export_and_reload.py            # a couple of minutes on a laptop CPU
python examples/export_and_reload.py --quick    # seconds: what the test suite runs

The exported file needs no training data: reloaded in another process, it decodes new images
as training did. It is a pickle: load only files you trust.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from cxrlt import cxr_dataloaders, cxr_learner, load_learner


def main(quick: bool) -> float:
    data = "synthetic:n_images=160,size=32" if quick else "synthetic"
    dls = cxr_dataloaders(data, size=32 if quick else 64, bs=32, seed=0)
    learn = cxr_learner(dls, arch="resnet18", loss="bce")
    learn.fit_one_cycle(1 if quick else 8, 2e-3)
    image = dls.data.paths[0]  # any PNG, JPEG or DICOM file

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "model.pkl"
        learn.export(file)
        reloaded = load_learner(file)

    labels, _, probs = reloaded.predict(image)  # label names, 0/1 decisions, probabilities
    top = probs.argsort(descending=True)[:3]
    print(f"{Path(image).name}: predicted {list(labels) or 'nothing'}; most likely:")
    print(", ".join(f"{reloaded.dls.vocab[i]} {probs[i]:.3f}" for i in top))

    difference = (probs - learn.predict(image)[2]).abs().max().item()
    print(f"largest difference from the original learner: {difference:.1e}")
    if difference > 1e-6:
        raise SystemExit("the reloaded learner predicts differently")
    return difference


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch")
    main(parser.parse_args().quick)
