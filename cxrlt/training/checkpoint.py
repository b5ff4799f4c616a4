"""Epoch checkpoints: a run that is killed resumes where it stopped and ends the same.

After every epoch one file holds all the state the next epoch depends on: weights,
optimiser, the epoch, every random generator, the loaders' epoch counters (they seed the
sampling order) and the state of callbacks that keep some (deferred re-weighting counts
epochs). It holds only what torch's safe loader reads (tensors, numbers, strings, lists and
dicts) and is read with ``weights_only=True``, so resuming a run directory someone sent runs
no code. It is written atomically, so a kill mid-write leaves the previous one whole. The
weights scoring best on validation are kept beside it for best-epoch selection: by one
score, or by several (each half of the validation split, for cross-fitted selection), one
file per epoch that is best by some score.

Writing (a few hundred megabytes for a mid-sized model) happens on a background thread, so
the next epoch trains meanwhile: the training thread only copies the state to host memory.
Whoever reads the files waits for the writes first (:meth:`EpochCheckpoint.wait`).
"""

from __future__ import annotations

import copy
import math
import pickle
import random
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback, CancelEpochException
from fastai.callback.progress import ProgressCallback
from fastai.learner import Recorder
from fastcore.basics import noop
from fastcore.foundation import L

from cxrlt.errors import CxrltError
from cxrlt.evaluation.selection import WHOLE
from cxrlt.io import atomic_path
from cxrlt.training.events import predicting

BEST_PATTERN = "best-epoch*.pt"  # the epoch number in place of *


def bare_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel (or DataParallel) wrapper."""
    return getattr(model, "module", model)


def rng_states() -> dict[str, Any]:
    """Every random generator's state, in the safe loader's types (NumPy's key as a tensor)."""
    name, key, position, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(key.astype(np.int64)), position, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    name, key, *rest = states["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _loaders(learn: Any) -> list[Any]:
    """The data loaders, unwrapped from fastai's distributed wrapper."""
    return [getattr(dl, "dl", dl) for dl in learn.dls.loaders]


# What every checkpoint of ``EpochCheckpoint`` holds.
CHECKPOINT_KEYS = (
    "epochs_done",
    "n_epoch",
    "model",
    "opt",
    "scaler",
    "rng",
    "loaders",
    "callbacks",
    "best",
)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint file ``path``, read by torch's safe loader: a file holding anything but
    tensors, numbers, strings, lists and dicts (a checkpoint of an older cxrlt, or one crafted
    to run code when unpickled) is refused, and nothing in it runs."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the refusal says more
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # what the safe loader refuses
        raise CxrltError(_unsafe_file_message(path, str(error))) from None
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise CxrltError(
            f"{path} cannot be read ({type(error).__name__}: {error}). Start the run again "
            "with --overwrite."
        ) from error
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CxrltError(
            f"{path} is not a checkpoint of `cxrlt run` (it lacks {', '.join(missing)}), so "
            "the run cannot go on from it. Start the run again with --overwrite."
        )
    return state


def _unsafe_file_message(path: Path, refusal: str) -> str:
    """Why the safe loader refused ``path`` (from torch's ``refusal``), and what to do."""
    named = re.search(r"GLOBAL ([\w.]{1,80})\b", refusal)
    if named:
        found = (
            f"it holds Python objects (first: {named.group(1)}) beyond tensors, numbers and "
            "lists, and unpickling them could run code, as checkpoints of cxrlt versions "
            "before safe loading do"
        )
    else:
        stopped = re.search(r"WeightsUnpickler error:\s*([^\n]+)", refusal)
        found = "it is not in the form cxrlt writes checkpoints in" + (
            f" (torch's safe loader stopped at: {stopped.group(1).strip()})" if stopped else ""
        )
    return (
        f"{path} was not loaded: {found}. Nothing in it was run. Start the run again with "
        "--overwrite (its options are in config.json)."
    )


def load_optimizer_state(opt: Any, state: dict[str, Any]) -> None:
    """Load a fastai optimiser's state as a checkpoint holds it: its hyper-parameters back
    in fastai's ``L``, every state tensor on its parameter's device."""
    opt.load_state_dict({**state, "hypers": L(state["hypers"])})
    for param, param_state in opt.state.items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                param_state[key] = value.to(param.device)


def safe_form(obj: Any, *, copy_tensors: bool = False, where: str = "state") -> Any:
    """``obj`` in the types torch's safe loader reads back: tensors, Python numbers, strings,
    None, and lists, tuples and dicts of them (a state dict keeps its ``OrderedDict`` and
    ``_metadata``). NumPy arrays become tensors, NumPy scalars Python numbers, fastcore's ``L``
    a list; anything else is refused, naming ``where`` it is, since it could not be resumed.

    With ``copy_tensors`` every tensor is copied to host memory, so the result can be written
    while training goes on changing the originals (containers are always new)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True) if copy_tensors else obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        items = [
            (key, safe_form(value, copy_tensors=copy_tensors, where=f"{where}[{key!r}]"))
            for key, value in obj.items()
        ]
        if not isinstance(obj, OrderedDict):
            return dict(items)
        copied = OrderedDict(items)
        if hasattr(obj, "_metadata"):
            copied._metadata = copy.deepcopy(obj._metadata)
        return copied
    if isinstance(obj, (list, L)) or type(obj) is tuple:
        values = [
            safe_form(value, copy_tensors=copy_tensors, where=f"{where}[{index}]")
            for index, value in enumerate(obj)
        ]
        return tuple(values) if type(obj) is tuple else values
    raise CxrltError(
        f"Cannot write {where}, a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint "
        "holds only tensors, numbers, strings, and lists and dicts of them, so that it can be "
        "resumed without running code. Make the callback's state_dict return those."
    )


class BackgroundWriter:
    """Runs one write job at a time on a thread; :meth:`wait` joins it and raises its error."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self.wait()

        def run() -> None:
            try:
                job()
            except BaseException as error:  # noqa: BLE001 - re-raised by wait()
                self._error = error

        self._thread = threading.Thread(target=run, name="cxrlt-checkpoint")
        self._thread.start()

    def wait(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error


def wait_for_checkpoints(learn: Any) -> None:
    """Finish the checkpoint writes in flight of ``learn``'s :class:`EpochCheckpoint`."""
    for cb in learn.cbs:
        if isinstance(cb, EpochCheckpoint):
            cb.wait()


def _has_own(cb: Callback, method: str) -> bool:
    """Whether the callback's class defines ``method`` (fastai forwards unknown attributes
    of a callback to the learner and on to the model, so ``hasattr`` would say yes)."""
    return callable(getattr(type(cb), method, None))


class EpochCheckpoint(Callback):
    """Write a checkpoint to ``path`` after each epoch and keep the best weights beside it,
    by ``monitor`` or by each of the named ``scores`` (a function called after every epoch's
    validation; its ``"all"`` entry stands for ``monitor``). The caller names the file: the
    run directory's layout is not training's business.

    With ``resume`` (a loaded checkpoint) the epochs it covers are skipped without logging,
    and every state is restored before the first epoch that still has to run (or at the end,
    when it covered them all). ``write`` False (ranks other than the first in distributed
    training) keeps the bookkeeping and writes nothing. ``mode`` says whether a larger
    ``monitor`` value is better (``max``, as for mAP) or a smaller one (``min``, a loss).

    The files of an epoch are written on a background thread while the next one trains;
    :meth:`wait` finishes them (``after_fit``, :meth:`best_state` and :meth:`remove_files`
    do, and so does :class:`~cxrlt.training.guards.StopOnNonFiniteLoss` before it stops).
    """

    # After the metrics are recorded, and after the progress bar has seen each epoch begin
    # (skipped ones too), like fastai's own SkipToEpoch.
    order = max(Recorder.order, ProgressCallback.order) + 1
    during_post_training = False  # checkpoints count the main training's epochs

    def __init__(
        self,
        path: Path | str,
        *,
        monitor: str = "mAP",
        mode: str = "max",
        resume: dict[str, Any] | None = None,
        write: bool = True,
        scores: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.path, self.monitor, self.resume, self.write = Path(path), monitor, resume, write
        self.folder = self.path.parent
        self._sign = 1.0 if mode == "max" else -1.0
        self._scores = scores
        self.best: dict[str, dict[str, Any]] = {}  # per score: its best value and epoch
        self.epochs_done, self._muted, self._trained = 0, None, False
        self._writer = BackgroundWriter()

    @property
    def best_score(self) -> float | None:
        return self.best.get(WHOLE, {}).get("score")

    @property
    def best_epoch(self) -> int | None:
        """The epoch (from 1) with the best ``monitor`` value; None while none was finite."""
        return self.best.get(WHOLE, {}).get("epoch")

    def before_fit(self) -> None:
        names = list(self.recorder.metric_names[1:])
        if self._scores is None and self.monitor not in names:
            raise CxrltError(
                f"Cannot select the best epoch by {self.monitor!r}: not among {names}."
            )
        self._index = names.index(self.monitor) if self.monitor in names else None
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
        self._restore()

    def before_train(self) -> None:
        self._trained = True

    def after_epoch(self) -> None:
        if self._muted is not None:
            self.learn.logger, self._muted = self._muted, None
            return
        if not self._trained:  # get_preds and validate fire epoch events too
            return
        self._trained = False
        self.wait()  # the last epoch's files, before the names they go by change
        self.epochs_done = self.epoch + 1
        model = bare_model(self.learn.model)
        files = []
        if self._update_best():
            files.append((self._best_name(self.epochs_done), model.state_dict()))
        if not self.write:
            return
        # In this order, so a kill at any moment leaves a checkpoint and the best weights it
        # names. After the last epoch nothing trains meanwhile (and fit waits for the files):
        # written at once, with no copy; else copied now and written while the next trains.
        files.append((self.path.name, self._state(model)))
        keep = {self._best_name(best["epoch"]) for best in self.best.values()}
        if self.epoch + 1 >= self.n_epoch:
            self._write(files, keep)
        else:
            copies = [(name, safe_form(state, copy_tensors=True)) for name, state in files]
            self._writer.submit(lambda: self._write(copies, keep))

    def _update_best(self) -> bool:
        """Record this epoch where it beats a score's best; whether it did for any."""
        if self._scores is not None:
            scores = dict(self._scores())
        else:
            scores = {WHOLE: float(self.recorder.values[-1][self._index])}
        improved = False
        for name, score in scores.items():
            best = self.best.get(name)
            if math.isfinite(score) and (
                best is None or self._sign * score > self._sign * best["score"]
            ):
                self.best[name] = {"score": float(score), "epoch": self.epochs_done}
                improved = True
        return improved

    def wait(self) -> None:
        """Finish the files in flight (and raise what went wrong writing them)."""
        self._writer.wait()

    def after_fit(self) -> None:
        self.wait()
        if self.resume is not None and not predicting(self.learn):
            self._restore()  # the checkpoint covered every epoch: nothing was trained

    def best_state(self, score: str = WHOLE) -> dict[str, torch.Tensor]:
        """The weights of the best epoch so far by ``score``."""
        return self.epoch_state(self.best[score]["epoch"])

    def epoch_state(self, epoch: int) -> dict[str, torch.Tensor]:
        """The weights of ``epoch`` (from 1), kept because it is best by some score."""
        self.wait()
        path = self.folder / self._best_name(epoch)
        return torch.load(path, map_location="cpu", weights_only=True)

    def remove_files(self) -> None:
        """Drop the checkpoint files once the run's own outputs are written."""
        self.wait()
        if self.write:
            self.path.unlink(missing_ok=True)
            for path in self.folder.glob(BEST_PATTERN):
                path.unlink()

    @staticmethod
    def _best_name(epoch: int | None) -> str:
        return BEST_PATTERN.replace("*", str(epoch))

    def _write(self, files: list[tuple[str, Any]], keep: set[str]) -> None:
        for name, state in files:
            self._save(name, state)
        self._remove_stale_best(keep)

    def _remove_stale_best(self, keep: set[str]) -> None:
        """Best weights of epochs not in ``keep``: superseded, or from an epoch a resume
        discarded.

        Removed only after the checkpoint naming the best epochs is written, so a kill at any
        moment leaves the best weights that checkpoint refers to.
        """
        for path in self.folder.glob(BEST_PATTERN):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def _save(self, name: str, state: Any) -> None:
        if self.write:
            with atomic_path(self.folder / name) as tmp:
                torch.save(state, tmp)

    def _state(self, model: torch.nn.Module) -> dict[str, Any]:
        scaler = getattr(self.learn, "scaler", None)
        state = {
            "epochs_done": self.epochs_done,
            "n_epoch": self.n_epoch,
            "model": self._training_weights(model),
            "opt": self.learn.opt.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_states(),
            "loaders": [getattr(dl, "epoch", None) for dl in _loaders(self.learn)],
            "callbacks": {
                cb.name: cb.state_dict()
                for cb in self.learn.cbs
                if cb is not self and _has_own(cb, "state_dict")
            },
            "best": self.best,
        }
        return safe_form(state, where="the checkpoint")  # new containers: best is copied

    def _training_weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The weights training goes on from, which differ from the validated ones while a
        callback (weight averaging) has swapped its own in."""
        for cb in self.learn.cbs:
            raw = cb.training_state() if _has_own(cb, "training_state") else None
            if raw is not None:
                return raw
        return model.state_dict()

    def _restore(self) -> None:
        state, self.resume = self.resume, None
        bare_model(self.learn.model).load_state_dict(state["model"])
        load_optimizer_state(self.learn.opt, state["opt"])
        scaler = getattr(self.learn, "scaler", None)
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        for dl, epoch in zip(_loaders(self.learn), state["loaders"], strict=True):
            if epoch is not None:
                dl.epoch = epoch
        for cb in self.learn.cbs:
            if cb.name in state["callbacks"] and _has_own(cb, "load_state_dict"):
                cb.load_state_dict(state["callbacks"][cb.name])
        self.best = copy.deepcopy(state["best"])
        self.epochs_done = state["epochs_done"]
        set_rng_states(state["rng"])
