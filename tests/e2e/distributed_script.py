"""One rank of the 2-process CPU training that tests/e2e/test_distributed.py launches with torchrun.

Usage: ``python -m torch.distributed.run --nproc_per_node 2 tests/e2e/distributed_script.py OUT``.
Each rank writes ``OUT/rank{r}.json``: weight checksums of every rank before and after training,
the training batches it saw, and (rank 0) the validation mAP the Learner recorded next to the mAP
computed directly on the whole validation set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

from cxrlt.data.loaders import ArraySet, cxr_dataloaders
from cxrlt.evaluation.metrics import macro_average_precision
from cxrlt.training.distributed import (
    barrier,
    cleanup,
    distributed,
    gather_checksums,
    is_main_process,
    rank,
    rank_local,
    setup_device,
    world_size,
)
from cxrlt.training.learner import cxr_learner


class CountBatches(Callback):
    """Training batches (and their images) this rank ran."""

    def __init__(self) -> None:
        self.batches, self.images = 0, 0

    def after_batch(self) -> None:  # Learner.validate also runs before_fit: count here only
        if self.training:
            self.batches += 1
            self.images += len(self.learn.yb[0])


class Boom(Callback):
    """Fails the first batch, as a crash mid-fit would."""

    def before_batch(self) -> None:
        raise RuntimeError("boom")


def plain_map(learn, dl) -> tuple[float, int]:  # noqa: ANN001
    """mAP over every item of ``dl`` by this process alone: no gathering, no padding."""
    model = learn.model.eval()
    scores, targets = [], []
    with torch.no_grad():
        for images, target in dl:
            scores.append(model(images).float().cpu().numpy())
            targets.append(target.cpu().numpy())
    scores_all, targets_all = np.concatenate(scores), np.concatenate(targets)
    return macro_average_precision(scores_all, targets_all), len(targets_all)


def main(out: Path) -> None:
    set_seed(0)
    device = setup_device(torch.device("cpu"))
    dls = cxr_dataloaders("synthetic:n_images=160,size=32", size=32, bs=16, device=device, seed=0)
    learn = cxr_learner(dls, "resnet18", "bce", pretrained=False)
    counter = CountBatches()
    learn.add_cb(counter)
    before = gather_checksums(learn.model)
    n_callbacks = len(learn.cbs)
    with distributed(learn, device):
        learn.fit(1, 1e-3)
        names = learn.recorder.metric_names[1:-1]
        recorded = dict(zip(names, learn.recorder.values[-1], strict=True))
        gathered_valid = int(sum(len(t) for t in learn.metrics[0].targs))
        # Several batches per rank: gathered predictions must still follow the data set's order.
        small = dls.valid.new(bs=4)
        ddp_preds, ddp_targets = learn.get_preds(dl=small)
        # An odd-sized validation set: 2 ranks pad it by one item, to_detach must drop it.
        valid = dls.valid.dataset
        odd = ArraySet(valid.images, valid.rows[:-2], valid.targets[:-2].numpy())
        odd_dl = dls.valid.new(odd)
        odd_recorded = learn.validate(dl=odd_dl)[1]
        gathered_odd = int(sum(len(t) for t in learn.metrics[0].targs))
    failed = False
    try:  # a fit that fails inside the block still leaves the learner unwrapped
        with distributed(learn, device):
            learn.fit(1, 1e-3, cbs=Boom())
    except RuntimeError as error:
        failed = "boom" in str(error)
    record = {
        "rank": rank(),
        "failed_fit_raised": failed,
        "world_size": world_size(),
        "before": before,
        "after": gather_checksums(learn.model),
        "after_with_buffers": gather_checksums(learn.model, buffers=True),
        "train_batches": counter.batches,
        "train_images": counter.images,
        "single_process_batches": len(dls.train),
        "n_train": dls.n_train,
        "model_type": type(learn.model).__name__,
        "loaders": [type(dl).__name__ for dl in learn.dls.loaders],
        "callbacks_restored": len(learn.cbs) == n_callbacks,
        "ddp_preds_in_order": torch.equal(ddp_targets, valid.targets),
        "ddp_preds_items": len(ddp_preds),
    }
    if is_main_process():
        full_map, n_valid = plain_map(learn, dls.valid)
        odd_map, n_odd = plain_map(learn, odd_dl)
        with rank_local(learn):  # rank 0 alone: nothing may wait for rank 1
            local_preds, local_targets = learn.get_preds(dl=dls.valid)
            local_map = learn.validate()[1]
        record |= {
            "recorded_map": recorded["mAP"],
            "full_map": full_map,
            "n_valid": n_valid,
            "gathered_valid_items": gathered_valid,
            "odd_recorded_map": odd_recorded,
            "odd_full_map": odd_map,
            "n_odd": n_odd,
            "odd_gathered_items": gathered_odd,
            "rank_local_map": local_map,
            "rank_local_items": len(local_targets),
            "ddp_preds_match_local": bool(torch.allclose(ddp_preds, local_preds, atol=1e-4)),
        }
    (out / f"rank{rank()}.json").write_text(json.dumps(record, indent=1))
    barrier()
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
