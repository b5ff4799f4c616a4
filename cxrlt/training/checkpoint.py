"""Epoch checkpoints: a run that is killed resumes where it stopped and ends the same.

After every epoch one file holds all the state the next epoch depends on: weights,
optimiser, the epoch, every random generator, the loaders' epoch counters (they seed the
sampling order) and the state of callbacks that keep some (deferred re-weighting counts
epochs). It is written atomically, so a kill mid-write leaves the previous one whole. The
weights scoring best on validation are kept beside it for best-epoch selection.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback, CancelEpochException
from fastai.callback.progress import ProgressCallback
from fastai.learner import Recorder
from fastcore.basics import noop

from cxrlt.errors import CxrltError
from cxrlt.io import atomic_path
from cxrlt.training.events import predicting

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


def bare_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel (or DataParallel) wrapper."""
    return getattr(model, "module", model)


def rng_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _loaders(learn: Any) -> list[Any]:
    """The data loaders, unwrapped from fastai's distributed wrapper."""
    return [getattr(dl, "dl", dl) for dl in learn.dls.loaders]


def load_checkpoint(folder: Path) -> dict[str, Any]:
    """The checkpoint in ``folder`` (our own file: it holds generator states, not just tensors)."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise CxrltError(
            f"{folder} has no {CHECKPOINT}: the run stopped before its first epoch ended, "
            "so there is nothing to resume. Start it again with --overwrite."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise CxrltError(
            f"{path} cannot be read ({type(error).__name__}: {error}): start the run again "
            "with --overwrite."
        ) from error


class EpochCheckpoint(Callback):
    """Write a checkpoint after each epoch and keep the best weights by ``monitor``.

    With ``resume`` (a loaded checkpoint) the epochs it covers are skipped without logging,
    and every state is restored before the first epoch that still has to run. ``write``
    False (ranks other than the first in distributed training) keeps the bookkeeping and
    writes nothing.
    """

    # After the metrics are recorded, and after the progress bar has seen each epoch begin
    # (skipped ones too), like fastai's own SkipToEpoch.
    order = max(Recorder.order, ProgressCallback.order) + 1

    def __init__(
        self,
        folder: Path | str,
        *,
        monitor: str = "mAP",
        resume: dict[str, Any] | None = None,
        write: bool = True,
    ) -> None:
        self.folder, self.monitor, self.resume, self.write = Path(folder), monitor, resume, write
        self.best_score, self.best_epoch = -math.inf, None
        self.epochs_done, self._muted, self._trained = 0, None, False

    def before_fit(self) -> None:
        names = list(self.recorder.metric_names[1:])
        if self.monitor not in names:
            raise CxrltError(
                f"Cannot select the best epoch by {self.monitor!r}: not among {names}."
            )
        self._index = names.index(self.monitor)
        if self.resume is not None and self.resume["n_epoch"] != self.n_epoch:
            raise CxrltError(
                f"The checkpoint belongs to a {self.resume['n_epoch']}-epoch run, "
                f"this one has {self.n_epoch} epochs: resume with the run's own options."
            )

    def before_epoch(self) -> None:
        if self.resume is None or predicting(self.learn):
            return
        if self.epoch < self.resume["epochs_done"]:
            self._muted, self.learn.logger = self.learn.logger, noop  # no log line for it
            raise CancelEpochException
        self._restore(self.resume)
        self.resume = None

    def before_train(self) -> None:
        self._trained = True

    def after_epoch(self) -> None:
        if self._muted is not None:
            self.learn.logger, self._muted = self._muted, None
            return
        if not self._trained:  # get_preds and validate fire epoch events too
            return
        self._trained = False
        self.epochs_done = self.epoch + 1
        score = float(self.recorder.values[-1][self._index])
        model = bare_model(self.learn.model)
        if score > self.best_score:
            self.best_score, self.best_epoch = score, self.epochs_done
            self._save(BEST, model.state_dict())
        self._save(CHECKPOINT, self._state(model))

    def best_state(self) -> dict[str, torch.Tensor]:
        """The weights of the best epoch so far."""
        return torch.load(self.folder / BEST, map_location="cpu", weights_only=True)

    def remove_files(self) -> None:
        """Drop the checkpoint files once the run's own outputs are written."""
        if self.write:
            for name in (CHECKPOINT, BEST):
                (self.folder / name).unlink(missing_ok=True)

    def _save(self, name: str, state: Any) -> None:
        if self.write:
            with atomic_path(self.folder / name) as tmp:
                torch.save(state, tmp)

    def _state(self, model: torch.nn.Module) -> dict[str, Any]:
        return {
            "epochs_done": self.epochs_done,
            "n_epoch": self.n_epoch,
            "model": self._training_weights(model),
            "opt": self.learn.opt.state_dict(),
            "rng": rng_states(),
            "loaders": [getattr(dl, "epoch", None) for dl in _loaders(self.learn)],
            "callbacks": {
                cb.name: cb.state_dict()
                for cb in self.learn.cbs
                if cb is not self and hasattr(cb, "state_dict")
            },
            "best": {"score": self.best_score, "epoch": self.best_epoch},
        }

    def _training_weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The weights training goes on from, which differ from the validated ones while a
        callback (weight averaging) has swapped its own in."""
        for cb in self.learn.cbs:
            raw = cb.training_state() if hasattr(cb, "training_state") else None
            if raw is not None:
                return raw
        return model.state_dict()

    def _restore(self, state: dict[str, Any]) -> None:
        bare_model(self.learn.model).load_state_dict(state["model"])
        self.learn.opt.load_state_dict(state["opt"])
        for dl, epoch in zip(_loaders(self.learn), state["loaders"], strict=True):
            if epoch is not None:
                dl.epoch = epoch
        for cb in self.learn.cbs:
            if cb.name in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][cb.name])
        self.best_score, self.best_epoch = state["best"]["score"], state["best"]["epoch"]
        self.epochs_done = state["epochs_done"]
        set_rng_states(state["rng"])
