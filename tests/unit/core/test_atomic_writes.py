"""Run-directory writes: whole files or none, an overwrite that replaces the whole run, and
file-system errors (a full disk, a folder that is not writable) told in words, not tracebacks."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import cxrlt.io
from cxrlt.cli import app
from cxrlt.cli.app import friendly_errors
from cxrlt.errors import CxrltError, CxrltInterrupted, os_error_message
from cxrlt.io import atomic_path, write_json, write_text
from cxrlt.outputs.run_dir import RunDir, check_output_file, check_run_folder, holds_run
from cxrlt.pytest_plugin import TINY_DATA
from tests.helpers.refusal import snapshot

OLD = "epoch,mAP\n0,0.25\n"
NEW = "epoch,mAP\n0,0.25\n1,0.5\n" * 1000
RUN = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "16", "--no-pretrained"]
skip_as_root = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")


def leftovers(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


class HalfWriter(io.StringIO):
    """A text file that takes half of what it is given, then fails as a full disk does."""

    def write(self, text: str) -> int:
        super().write(text[: len(text) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def full_disk(monkeypatch):
    """Every text file cxrlt.io opens fills the disk part-way through its first write."""
    monkeypatch.setattr(cxrlt.io, "open", lambda *args, **kwargs: HalfWriter(), raising=False)


def test_a_write_that_fails_part_way_leaves_the_previous_file_whole(tmp_path, full_disk):
    path = tmp_path / "log.csv"
    path.write_text(OLD)
    with pytest.raises(OSError) as info:
        write_text(path, NEW)
    assert path.read_text() == OLD
    assert leftovers(tmp_path) == []
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)  # the file meant, not the temporary one


def test_a_failed_rename_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text(OLD)

    def refuse(source, target):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), source)

    monkeypatch.setattr(cxrlt.io.os, "replace", refuse)
    with pytest.raises(OSError) as info:
        write_json(path, {"mAP": 0.5})
    assert path.read_text() == OLD and leftovers(tmp_path) == []
    assert info.value.filename == str(path)


def test_an_error_inside_the_block_keeps_the_previous_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old weights")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"new wei")
        raise RuntimeError("the serializer failed")
    assert path.read_bytes() == b"old weights" and leftovers(tmp_path) == []


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    """Not the owner-only mode of the temporary file: a shared run folder stays readable."""
    written = write_text(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert written.stat().st_mode == (tmp_path / "b.txt").stat().st_mode


# ---- the epoch log -------------------------------------------------------------------------


def fit_with_log(folder: Path, epochs: int, keep_epochs: int | None = None):
    from fastai.test_utils import synth_learner

    from cxrlt.training.run_log import RunLog

    learn = synth_learner(cbs=[RunLog("log.csv", keep_epochs=keep_epochs)], path=folder)
    learn.logger = lambda log: None
    learn.fit(epochs)
    return learn


def test_the_log_has_a_header_and_one_line_per_epoch_and_no_temporary_file(tmp_path):
    learn = fit_with_log(tmp_path, 3)
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,valid_loss,time"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]
    learn.get_preds()  # fastai fires fit events while predicting: the log stays as it is
    assert (tmp_path / "log.csv").read_text().splitlines() == lines
    assert leftovers(tmp_path) == []


def test_a_resumed_log_keeps_the_covered_epochs_byte_for_byte(tmp_path):
    fit_with_log(tmp_path, 3)
    before = (tmp_path / "log.csv").read_bytes()
    kept = b"".join(before.splitlines(keepends=True)[:3])  # header, epochs 0 and 1
    fit_with_log(tmp_path, 2, keep_epochs=2)
    after = (tmp_path / "log.csv").read_bytes()
    assert after.startswith(kept) and after != before
    assert len(after.splitlines()) == 5  # the dropped epoch line replaced by two new ones


def test_a_log_write_that_fails_leaves_the_last_whole_log(tmp_path, monkeypatch):
    written: list[bytes] = []
    replace = os.replace

    def fail_at_third_write(source, target):  # header, epoch 0, then epoch 1 fails
        if len(written) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(source, target)
        written.append(Path(target).read_bytes())

    monkeypatch.setattr(cxrlt.io.os, "replace", fail_at_third_write)
    with pytest.raises(OSError):
        fit_with_log(tmp_path, 3)
    assert (tmp_path / "log.csv").read_bytes() == written[-1]
    assert written[-1].decode().splitlines()[1].startswith("0,")
    assert leftovers(tmp_path) == []


# ---- run folders ---------------------------------------------------------------------------


def fake_run(folder: Path) -> Path:
    """A folder as a finished run leaves it, with files a newer run would not write."""
    folder.mkdir(parents=True)
    write_json(folder / "config.json", {"cxrlt_version": "0", "status": "complete"})
    for name in ("model.safetensors", "submission.csv", "skipped.csv", "log.csv"):
        (folder / name).write_text(name)
    (folder / "plots").mkdir()
    (folder / "plots" / "reliability.png").write_bytes(b"png")
    return folder


def test_start_removes_every_file_of_the_previous_run(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the run's")
    run = fake_run(tmp_path / "run")
    (run / "linked").symlink_to(outside, target_is_directory=True)
    run_dir = RunDir(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir())[0] == "config.json"  # nothing gone yet
    assert run_dir.start() is run_dir
    assert list(run.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "not the run's"  # a link is not followed


def test_start_leaves_a_folder_without_a_run_as_it_is(tmp_path):
    folder = tmp_path / "sweep-cell"
    folder.mkdir()
    (folder / "console.txt").write_text("output of the cell")
    before = snapshot(folder)
    RunDir(folder, check=False).start()
    RunDir(tmp_path / "new").start()
    assert snapshot(folder) == before and not (tmp_path / "new").exists()


def test_holds_run_knows_the_config_cxrlt_wrote(tmp_path):
    assert holds_run(fake_run(tmp_path / "run"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"learning_rate": 1}')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"cxrlt_version":')
    assert not any(holds_run(tmp_path / name) for name in ("other", "broken", "absent"))


@pytest.mark.parametrize(
    ("setup", "overwrite", "fragments"),
    [
        ("file", True, ["is a file, not a folder"]),
        ("under_file", False, ["cannot be created", "is a file, not a folder"]),
        ("run", False, ["already holds a run", "--overwrite", "--resume"]),
        ("foreign_config", True, ["not written by cxrlt", "Choose another folder"]),
        ("user_files", True, ["holds files and no run", "new or empty folder"]),
    ],
)
def test_check_run_folder_refuses(tmp_path, setup, overwrite, fragments):
    out = tmp_path / "out"
    if setup == "file":
        out.write_text("a file")
    elif setup == "under_file":
        (tmp_path / "file").write_text("a file")
        out = tmp_path / "file" / "out"
    elif setup == "run":
        fake_run(out)
    else:
        out.mkdir()
        (out / ("config.json" if setup == "foreign_config" else "notes.txt")).write_text("{}")
    before = snapshot(tmp_path)
    with pytest.raises(CxrltError) as info:
        check_run_folder(out, overwrite=overwrite)
    assert all(fragment in str(info.value) for fragment in fragments), info.value
    assert str(out) in str(info.value)
    assert snapshot(tmp_path) == before


def test_check_run_folder_accepts_what_a_run_may_use(tmp_path):
    check_run_folder(tmp_path / "new" / "deeper", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_run_folder(tmp_path / "empty", overwrite=True)
    check_run_folder(fake_run(tmp_path / "run"), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "run"]


def test_check_run_folder_refuses_a_folder_of_other_files(tmp_path):
    """A run written among the user's files would have them cleared by a later --overwrite."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("important")
    for overwrite in (False, True):
        with pytest.raises(CxrltError, match="holds files and no run"):
            check_run_folder(tmp_path / "mine", overwrite=overwrite)


def test_check_output_file(tmp_path):
    check_output_file(tmp_path / "new" / "submission.csv")
    assert not (tmp_path / "new").exists()
    with pytest.raises(CxrltError, match=r"is a folder: give a file's path"):
        check_output_file(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CxrltError, match=r"file is a file, not a folder"):
        check_output_file(tmp_path / "file" / "submission.csv")


def test_a_folder_that_is_not_writable_is_found_before_any_work(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("tempfile.mkstemp", denied)
    for check in (lambda: check_run_folder(tmp_path / "run", overwrite=False),
                  lambda: check_output_file(tmp_path / "submission.csv")):  # fmt: skip
        with pytest.raises(CxrltError) as info:
            check()
        assert f"{tmp_path} is not writable (Permission denied)" in str(info.value)
        assert "Choose --out in a folder you may write to" in str(info.value)


@skip_as_root
def test_a_read_only_folder_is_refused(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(CxrltError, match="is not writable"):
            check_run_folder(tmp_path / "run", overwrite=False)
    finally:
        tmp_path.chmod(0o755)


# ---- errors the CLI tells in words ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "fragments"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), ["disk is full", "CXRLT_CACHE_DIR"]),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded", "/runs/a/model.safetensors"),
            ["disk is full", "while writing /runs/a/model.safetensors", "--out"],
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/runs/a/log.csv"),
            ["/runs/a/log.csv may not be used", "another --out", "or of /runs/a."],
        ),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/x"), ["/mnt/x is on a read-only"]),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/o"), ["/o is a folder", "file's"]),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), ["A part of /f/x"]),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/n"), ["/n: No such"]),
    ],
)
def test_file_system_errors_name_the_path_and_the_fix(error, fragments):
    message = os_error_message(error)
    assert message is not None and all(fragment in message for fragment in fragments), message


def test_an_error_without_a_path_keeps_its_traceback():
    assert os_error_message(OSError(errno.ECONNRESET, "Connection reset")) is None
    assert os_error_message(OSError("no errno", "/some/file")) is None


def command_app(command) -> typer.Typer:
    """A one-command app with the CLI's error handling."""
    one = typer.Typer()
    one.command()(friendly_errors(command))
    return one


@pytest.mark.parametrize(
    ("raised", "code", "expected"),
    [
        (KeyboardInterrupt(), 130, "Interrupted."),
        (CxrltInterrupted("Stopped after epoch 2: cxrlt run --resume runs/a"), 130, "--resume"),
        (OSError(errno.ENOSPC, "No space left on device", "x.csv"), 2, "writing x.csv"),
        (CxrltError("labels=[A,B] is not a list"), 2, "labels=[A,B] is not a list"),
    ],
)
def test_the_cli_stops_with_a_message_and_no_traceback(raised, code, expected):
    def command() -> None:
        print("epoch 1 done")
        raise raised

    result = CliRunner().invoke(command_app(command), [])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert result.output.index("epoch 1 done") < result.output.index(expected)  # flushed first


def test_an_unknown_os_error_is_not_hidden():
    def command() -> None:
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset")

    result = CliRunner().invoke(command_app(command), [])
    assert isinstance(result.exception, ConnectionResetError)


def test_a_full_disk_while_comparing_names_the_file_and_leaves_no_partial_output(
    tmp_path, full_disk
):
    from tests.unit.outputs.test_report import make_run

    out = tmp_path / "comparison"
    result = CliRunner().invoke(app, ["compare", str(make_run(tmp_path / "a")), "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"while writing {out}.csv" in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


# ---- --overwrite replaces the whole run ----------------------------------------------------


@pytest.mark.slow
def test_an_overwriting_run_leaves_nothing_of_the_previous_run(tmp_path):
    out = fake_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["run", *RUN, "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    names = {path.name for path in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names
    assert not names & {"submission.csv", "skipped.csv", "plots"}
    assert json.loads((out / "config.json").read_text())["status"] == "complete"
