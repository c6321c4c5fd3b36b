"""A training run's directory as one process owns it: the lock, its stale temporary files, the
metrics log read back after a cut, and the check that a resume continues the run it names."""

import fcntl
import fnmatch
import json
import os
from pathlib import Path

from ebmkit import checkpoint
from ebmkit.errors import EbmkitError

LOCK = ".lock"
# What a run writes through temporary files (checkpoint.atomic_save, Trainer.truncate_log, write_text).
TEMPORARY = (".*.safetensors.tmp*", "metrics.jsonl.tmp", ".preset.json.tmp*")
# Preset fields a resume may change: how long and how fast the run goes on, what it logs, its guard and its
# speed settings (lower train.lr and resume is the guard's own advice). Every other field defines the model,
# its data or the run's random streams, which the stored state fixes.
RESUME_MAY_CHANGE = ("name", "description", "guard.*", "speed.*", "train.iterations", "train.lr*", "train.init_lr",
                     "train.*_every", "train.eval_num", "train.num_preview", "train.grad_clip*", "train.ema")


class RunLock:
    """An exclusive lock on RUN/.lock for the life of this process: the kernel drops it when the process
    ends, however it ends, so a killed run leaves no stale lock. The file names the holder's PID."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            self.fd = None
            raise EbmkitError(f"run directory {self.path.parent} is in use by another training process "
                              f"(PID {holder}); wait for it to end or choose another --run-dir", exit_code=1) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def remove_temporary(run_dir: Path) -> None:
    """Temporary files of an earlier process that died before renaming them (the lock says none is alive)."""
    for pattern in TEMPORARY:
        for stale in run_dir.glob(pattern):
            stale.unlink()


def read_log(path: Path, warn) -> list[dict]:
    """The records of a metrics.jsonl. A line that does not parse (the last one, cut by a full disk or a
    kill mid-write) is dropped, and `warn(message)` says so."""
    records, dropped = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError
            records.append(record)
        except ValueError:
            dropped.append(number)
    if dropped:
        warn(f"{path}: dropped {len(dropped)} incomplete or unreadable line(s) (line {dropped[0]}"
             f"{' ...' if len(dropped) > 1 else ''})")
    return records


def differences(a, b, prefix: str = ""):
    """(dotted field, value in a, value in b) for every leaf where two JSON values differ, in order."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            yield from differences(a.get(key), b.get(key), f"{prefix}{key}.")
    elif a != b:
        yield prefix.rstrip("."), a, b


def stored_preset(model_file: Path) -> dict:
    """The preset a run's model file was written with (its last checkpoint's)."""
    try:
        stored = json.loads(checkpoint.read_metadata(model_file)["preset"])["preset"]
        if isinstance(stored, dict):
            return stored
    except (KeyError, TypeError, ValueError):
        pass
    raise EbmkitError(f"cannot resume: {model_file} holds no readable preset metadata")


def check_resume(stored: dict, preset: dict, run_dir: Path) -> None:
    """A resume keeps every preset field that defines the model, its data and its random streams (exit 2
    naming the first that differs between the run's stored state and the preset it is resumed with)."""
    for field, was, now in differences(stored, preset):
        if not any(fnmatch.fnmatchcase(field, pattern) for pattern in RESUME_MAY_CHANGE):
            raise EbmkitError(f"cannot resume {run_dir}: {field} is {json.dumps(was)} in the run's stored state "
                              f"but {json.dumps(now)} in the preset given (a resume may change only "
                              f"train.iterations, learning rates, intervals, guard and speed settings)")
