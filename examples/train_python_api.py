"""Train and evaluate with cxrlt's fastai-style Python API.

python examples/train_python_api.py            # a couple of minutes on a laptop CPU
python examples/train_python_api.py --quick    # seconds: what the test suite runs
"""

from __future__ import annotations

import argparse

from cxrlt import cxr_dataloaders, cxr_learner
from cxrlt.evaluation.metrics import evaluate


def main(quick: bool) -> float:
    data = "synthetic:n_images=160,size=32" if quick else "synthetic"
    dls = cxr_dataloaders(data, size=32 if quick else 64, bs=32, seed=0)
    learn = cxr_learner(dls, arch="resnet18", loss="bce")
    learn.fit_one_cycle(1 if quick else 8, 2e-3)

    logits, targets = learn.get_preds(ds_idx=1, act=lambda x: x)
    report = evaluate(learn.loss_func.activation(logits).numpy(), targets.numpy(), dls.classes)
    print(report.per_class.round(3).to_string())
    print(f"mAP {report.overall['mAP']:.3f} (chance {report.overall['mAP_chance']:.3f})")
    return report.overall["mAP"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch")
    main(parser.parse_args().quick)
