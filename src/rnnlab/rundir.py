"""A run directory as a unit: claimed by one writer at a time, never overwritten by accident, with a
log that is only appended to and is read with suspicion.

    lock = claim("runs/char", resume=False, overwrite=False)   # RunDirError if it holds a run
    ...                                                         # write config, checkpoint, log
    lock.release()                                              # the OS also releases it on any exit

    history, report = reconcile_log("runs/char", step=2000)     # on resume: rows up to the checkpoint

The lock is an OS lock on `<run>/.lock` (flock on POSIX, msvcrt.locking on Windows): the kernel drops
it when the holder's process ends for any reason, SIGKILL included, so a dead run never blocks the
next one. The holder writes its PID into the file so a refused writer can say who holds it.

What any command writes goes through check_output (before any work: a regular file's path, never a
file the command reads, nor a run's file or a checkpoint unless --overwrite) and write_output (the
same check, then io.atomic_write_bytes).

log.jsonl gets one JSON row per step. A line that does not parse, and a row past the checkpoint's
step (written after the last save, before a crash), is never dropped: it moves to log.aside.jsonl
with its line number and the reason, and the report says so.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

RUN_FILES = ("config.json", "checkpoint.safetensors", "log.jsonl", "samples.txt", "loss.png", "log.aside.jsonl",
             "model.safetensors", "history.json", "metrics.json", "learning_curves.png", "forecast.png")  # rnnlab fit's
LOG, ASIDE, LOCK = "log.jsonl", "log.aside.jsonl", ".lock"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked; the message says why and what to do instead."""


# -- the lock --------------------------------------------------------------------------------------
class RunLock:
    """An exclusive, non-blocking OS lock on `<directory>/.lock`; `acquire` raises RunDirError naming
    the holder's PID when another process has it."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.path = self.directory / LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        try:
            # O_NOFOLLOW: a .lock planted as a symlink must not make us truncate the file it points at
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as e:
            why = "it is a symbolic link; remove it" if e.errno == errno.ELOOP else e.strerror
            raise OSError(e.errno, f"cannot create the lock file ({why})", str(self.path)) from None
        try:
            _lock(fd)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OSError(e.errno, f"cannot lock ({e.strerror})", str(self.path)) from None
            who = f"PID {holder}" if holder else "a process whose PID it did not record"
            raise RunDirError(f"{self.directory} is in use by another rnnlab process ({who}); wait for it to "
                              "finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)  # (os.pwrite and os.pread are POSIX only)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no stale PID for the next reader
            os.close(fd)  # closing the descriptor drops the lock

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        self.release()


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


# -- claiming a directory --------------------------------------------------------------------------
def run_files(directory) -> list[str]:
    """The run files present in `directory` (none: it holds no run)."""
    directory = Path(directory)
    return [name for name in RUN_FILES if (directory / name).exists()]


def describe_run(directory) -> str:
    """'checkpoint at step 2000, 2000 log rows' or the files it has, for messages."""
    from .io import CheckpointError, read_metadata

    directory = Path(directory)
    parts = []
    try:
        parts.append(f"checkpoint at step {read_metadata(directory / 'checkpoint.safetensors')['step']}")
    except (CheckpointError, OSError, KeyError, TypeError):
        pass
    log = directory / LOG
    if log.exists():
        with contextlib.suppress(OSError):
            with open(log, "rb") as f:
                parts.append(f"{sum(1 for line in f if line.strip())} log rows")
    return ", ".join(parts) or ", ".join(run_files(directory))


def claim(directory, *, resume: bool = False, overwrite: bool = False) -> RunLock:
    """Create `directory` if needed and lock it. A new run refuses a directory that holds one (unless
    `overwrite`: the old run stays until the new one, its data loaded and checked, calls `clear_run`
    just before its first checkpoint); a resume needs a checkpoint."""
    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"{directory} exists and is not a directory; choose a directory for --out") from None
    except OSError as e:
        raise OSError(e.errno, f"cannot create the run directory ({e.strerror})", str(directory)) from None
    lock = RunLock(directory).acquire()
    try:
        if resume:
            if not (directory / "checkpoint.safetensors").exists():
                raise RunDirError(f"{directory} holds no checkpoint to resume from (no checkpoint.safetensors); "
                                  f"start a new run with --out {directory}")
        else:
            present = run_files(directory)
            if present and not overwrite:
                raise RunDirError(f"{directory} already holds a run ({describe_run(directory)}); continue it "
                                  f"with --resume {directory}, replace it with --overwrite, or choose a fresh --out")
            if present and not holds_run(directory):  # e.g. --out . --overwrite in a project with a config.json
                raise RunDirError(f"{directory} holds {', '.join(present)} but no rnnlab run (no rnnlab checkpoint "
                                  "or training config.json), so --overwrite will not delete them; choose a fresh --out")
    except BaseException:
        if created:  # still under the lock, so no other writer can have started in it
            abandon(directory)
        lock.release()
        raise
    return lock


def holds_run(directory) -> bool:
    """Whether `directory` holds an rnnlab run: an rnnlab checkpoint, or a config.json that `train` wrote
    (only then may --overwrite delete its run files: a project's own config.json is not one)."""
    from .io import CheckpointError, read_metadata

    directory = Path(directory)
    try:
        read_metadata(directory / "checkpoint.safetensors")
        return True
    except (CheckpointError, OSError):
        pass
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(config, dict) and {"model", "hidden", "seq_len", "batch", "out"} <= set(config)


def clear_run(directory, keep=()) -> None:
    """Remove the run files of `directory` (held under its lock) but those named in `keep`: --overwrite's
    last step before the new run's first checkpoint, so any refusal before it leaves the old run whole."""
    directory = Path(directory)
    for name in run_files(directory):
        if name not in keep:
            (directory / name).unlink()


def abandon(directory) -> None:
    """Remove a directory `claim` created if nothing but the lock file was written into it."""
    directory = Path(directory)
    with contextlib.suppress(OSError):
        if {p.name for p in directory.iterdir()} <= {LOCK}:
            shutil.rmtree(directory)


# -- the log ---------------------------------------------------------------------------------------
def read_log(directory) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """(rows, bad): (line number, row) of every line that is a JSON object with an integer "step" >= 0,
    and (line number, text) of every other non-blank line."""
    path = Path(directory) / LOG
    rows, bad = [], []
    if not path.exists():
        return rows, bad
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                row = None
            step = row.get("step") if isinstance(row, dict) else None
            if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
                rows.append((number, row))
            else:
                bad.append((number, text))
    return rows, bad


def reconcile_log(directory, step: int) -> tuple[list[dict], str | None]:
    """The log rows of steps 1..`step` in order, and a report (None if the log was clean).

    Corrupt lines, repeated or out-of-order steps and rows past `step` are appended to log.aside.jsonl
    ({"line", "reason", "text"}), then log.jsonl is replaced (atomically) by the rows kept."""
    directory = Path(directory)
    rows, bad = read_log(directory)
    kept, aside = [], [(n, "not a JSON row with a step", text) for n, text in bad]
    beyond = []
    for number, row in rows:
        if row["step"] > step:
            beyond.append(row["step"])
            aside.append((number, f"past the checkpoint (step {step})", json.dumps(row)))
        elif kept and row["step"] <= kept[-1]["step"]:
            aside.append((number, f"step {row['step']} repeated or out of order", json.dumps(row)))
        else:
            kept.append(row)
    if not aside:
        path = directory / LOG
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            write_atomic(path, "".join(json.dumps(row) + "\n" for row in kept))  # the next row gets its own line
        return kept, None
    aside.sort()
    with open(directory / ASIDE, "a", encoding="utf-8") as f:
        for number, reason, text in aside:
            f.write(json.dumps({"line": number, "reason": reason, "text": text}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    write_atomic(directory / LOG, "".join(json.dumps(row) + "\n" for row in kept))
    parts = []
    corrupt = [n for n, reason, _ in aside if reason.startswith("not a JSON")]
    if corrupt:
        parts.append(f"{len(corrupt)} unreadable line(s) ({_lines(corrupt)})")
    if beyond:
        parts.append(f"{len(beyond)} row(s) past the checkpoint (steps {min(beyond)}-{max(beyond)})")
    repeated = len(aside) - len(corrupt) - len(beyond)
    if repeated:
        parts.append(f"{repeated} repeated or out-of-order row(s)")
    return kept, (f"{directory / LOG}: {' and '.join(parts)} set aside in {directory / ASIDE}; "
                  f"{len(kept)} rows kept")


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:5]))
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{', ...' if len(numbers) > 5 else ''}"


def write_atomic(path, text: str) -> Path:
    """Write `text` to `path` atomically (io.atomic_write_bytes): readers see the old or the new file."""
    from .io import atomic_write_bytes

    return atomic_write_bytes(path, text)


# -- what a command writes -------------------------------------------------------------------------
def check_output(path, *, reads=(), overwrite: bool = False, flag: str = "--out") -> Path:
    """`path` as a file a command may write, checked before any work (OutputError otherwise): free or a
    regular file (never a directory, device, FIFO or symbolic link); never a file the command reads
    (`reads`: (path, what it is) pairs, compared as files, so a hard link or another spelling is caught);
    and, unless `overwrite`, never a file of a run directory nor an rnnlab checkpoint."""
    from .io import CheckpointError, OutputError, check_regular_target, read_metadata

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise OutputError(f"{flag} must name a file; got {str(path)!r}")
    path = check_regular_target(path, flag)
    if not path.parent.is_dir():  # said now, not after the work whose result it was to hold
        why = "is not a directory" if path.parent.exists() else "does not exist"
        raise OutputError(f"{flag} {path}: its folder {path.parent} {why}")
    for source, what in reads:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(f"{flag} {path} is {what}, which this command reads; choose another name")
    if overwrite or not path.exists():
        return path
    directory = path.parent
    if path.name in RUN_FILES + (LOCK,) and holds_run(directory):
        raise OutputError(f"{flag} {path} is a file of the run in {directory} ({describe_run(directory)}); choose "
                          "another name, or pass --overwrite to replace it")
    try:
        step = read_metadata(path)["step"]
    except (CheckpointError, OSError):
        return path
    raise OutputError(f"{flag} {path} is an rnnlab checkpoint (step {step}); choose another name, or pass "
                      "--overwrite to replace it")


def write_output(path, data, *, reads=(), overwrite: bool = False, flag: str = "--out") -> Path:
    """check_output, then write `data` (bytes or str) to `path` atomically."""
    from .io import atomic_write_bytes

    return atomic_write_bytes(check_output(path, reads=reads, overwrite=overwrite, flag=flag), data)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


__all__ = ["RunDirError", "RunLock", "claim", "clear_run", "holds_run", "abandon", "run_files", "describe_run",
           "read_log", "reconcile_log", "write_atomic", "check_output", "write_output"]
