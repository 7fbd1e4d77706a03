"""Files that survive crashes: atomic writes, clear write errors, stale temporaries, run locks.

* :func:`atomic_path` / :func:`atomic_open`: a hidden temporary file beside the target, then
  ``os.replace`` and an fsync of the directory. A reader (or a crash, or a power loss) never
  sees a half-written file: it sees the old file or the new one.
* A write that fails (a full disk, a read-only or missing directory, no permission) raises
  :class:`~renshu.errors.WriteError` naming the file the user asked for (not the hidden
  temporary), the reason and, for a full disk, the bytes needed and free.
* :func:`remove_stale_temporaries`: the temporaries a killed process left behind.
* :class:`RunLock`: one writer per run directory (``fcntl.flock`` on ``RUN/.lock``).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from renshu.errors import RunInUseError, WriteError

LOCK_FILE = ".lock"
# .NAME.PID.HEX.tmp[.SUFFIX]: what atomic_path names its temporaries (12 hex digits)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<hex>[0-9a-f]{12})\.tmp(\.[^.]*)?$")


def free_bytes(directory: str | Path) -> int:
    """Bytes free for this user on the filesystem holding ``directory`` (an existing folder).

    A module-level function so that a test can make a disk look full (it is renshu's own
    check, not the filesystem's)."""
    return shutil.disk_usage(directory).free


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def _existing_parent(path: Path) -> Path:
    for parent in [path.parent, *path.parents]:
        if parent.is_dir():
            return parent
    return Path(".")


def write_error(path: str | Path, error: OSError, needed: int | None = None) -> WriteError:
    """One line for a write of ``path`` that failed with ``error``: the file, the reason, and
    for a full disk the bytes needed (when known) and free."""
    path = Path(path)
    code = errno.errorcode.get(error.errno or 0, "")
    reason = error.strerror or str(error) or type(error).__name__
    text = f"cannot write {path}: {reason}" + (f" ({code})" if code else "")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = free_bytes(_existing_parent(path))
        except OSError:
            free = None
        text += f"; it needs {_size(needed)}, {_size(free)} free"
    elif error.errno == errno.ENOENT and not path.parent.is_dir():
        text += f" (the directory {path.parent} does not exist)"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        text += f" (check the permissions of {path.parent})"
    return WriteError(error.errno or 0, text)


@contextmanager
def writing(path: str | Path, needed: int | None = None) -> Iterator[None]:
    """Turn an ``OSError`` of the block (a write of ``path``) into a :class:`WriteError`."""
    try:
        yield
    except WriteError:
        raise
    except OSError as e:
        raise write_error(path, e, needed) from None


def check_free_space(path: str | Path, needed: int) -> None:
    """Refuse, before writing, a file of ``needed`` bytes that cannot fit beside ``path``."""
    path = Path(path)
    folder = _existing_parent(path)
    free = free_bytes(folder)
    if needed > free:
        raise WriteError(
            errno.ENOSPC,
            f"cannot write {path}: not enough space on the disk of {folder} (ENOSPC); it needs "
            f"{_size(needed)}, {_size(free)} free",
        )


def fsync_directory(directory: str | Path) -> None:
    """Make a rename in ``directory`` durable (filesystems that cannot fsync one are skipped)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """The hidden temporary beside ``path``: ``.NAME.PID.HEX.tmp[.SUFFIX]`` (the suffix kept so
    that writers that pick a format by suffix work)."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp{path.suffix}"


@contextmanager
def atomic_path(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path``.

    The temporary is removed if the block raises; an ``OSError`` (of the block or of the
    rename) becomes a :class:`WriteError` naming ``path`` (and, on a full disk, ``needed``:
    the file's size when the writer knows it).
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise
        fsync_directory(path.parent)
    except WriteError:
        raise
    except OSError as e:
        raise write_error(path, e, needed) from None


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", needed: int | None = None, **kwargs
) -> Iterator:
    """Open ``path`` for writing atomically (flushed and fsynced before the replace).

    The file gets the usual permissions (0o666 less the umask).
    """
    with atomic_path(path, needed) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


# -- temporaries of killed processes -----------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine; one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def remove_stale_temporaries(directory: str | Path, recursive: bool = True) -> list[Path]:
    """Remove the temporaries of :func:`atomic_path` (``.NAME.PID.HEX.tmp[.SUFFIX]``) whose
    process is dead, in ``directory`` (and below); returns what was removed. Files of living
    processes (this one included) and every other name are left alone."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    walk = os.walk(directory) if recursive else [(str(directory), [], os.listdir(directory))]
    for folder, _, names in walk:
        for name in names:
            found = _TEMPORARY.match(name)
            if found is None or pid_alive(int(found.group("pid"))):
                continue
            path = Path(folder) / name
            try:
                if path.is_file() and not path.is_symlink():
                    path.unlink()
                    removed.append(path)
            except OSError:
                pass  # not ours to fight over (permissions): leave it
    return removed


# -- one writer per run directory --------------------------------------------------------------


class RunLock:
    """An exclusive lock on a run directory (``RUN/.lock``, holding the owner's PID) for as
    long as a process writes the run. The kernel drops a ``flock`` when its process dies, so
    the lock of a killed run is free again: the next process takes it over."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self.previous_pid: int | None = None  # a dead holder whose lock was taken over

    def acquire(self) -> RunLock:
        import fcntl

        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_error(self.path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise write_error(self.path, e) from None
            who = f"process {holder}" if holder else "another process"
            raise RunInUseError(
                f"run directory {self.run_dir} is in use by {who} (it holds {self.path}); "
                "wait for it to finish, or stop it (kill -TERM "
                f"{holder or 'PID'}: it saves a checkpoint first) and resume then"
            ) from None
        old = _read_pid(fd)
        if old and old != os.getpid() and not pid_alive(old):
            self.previous_pid = old
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
