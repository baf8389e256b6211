"""Output folders: atomic files, strict JSON, the one-run-at-a-time lock, ``--out`` checks.

Standard library only (imported by the command line before any heavy module):

* ``atomic_write_bytes`` / ``atomic_path``: every file is written to a temporary file in the
  target folder (``.NAME.PID.XXXX.tmp``) and renamed over the target with ``os.replace``, so a
  reader sees the old file or the new one, never a partial one; the temporary file is removed
  when the write fails.  ``os.replace`` replaces a symbolic link at the target itself, it never
  writes through it.  Temporary files left by a killed process (SIGKILL cannot be caught) are
  removed when the next run takes the folder's lock.
* ``strict_json``: JSON that strict parsers accept (``allow_nan=False``): NaN and ±inf become
  ``null``, with a warning naming the key.
* ``folder_lock``: a lock file ``DIR/.nanotransport.lock`` holding JSON (pid, host, command,
  start time), created atomically (``os.link`` of a finished temporary file: the lock is never
  seen half-written; ``os.open(O_CREAT | O_EXCL)`` where links are not supported).  A second run
  is refused (exit 2) with a message naming the holder.  A lock whose process no longer runs on
  this host (pid gone, or reused by another process: its start time differs) is stale and is
  broken with a warning.  Hand-written rather than ``fcntl.flock`` because flock is not
  reliable on network file systems and cannot say who holds the lock.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .model.schema import ScenarioError

LOCK_NAME = ".nanotransport.lock"
_TEMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")  # .NAME.PID.RANDOM.tmp
_HELD: dict[str, int] = {}  # resolved folder -> nesting depth of this process's lock


class FolderError(ScenarioError):
    """An output folder that cannot be used (a file, read-only, or owned by another run)."""


class NonFiniteWarning(UserWarning):
    """A NaN or infinite value was written as JSON null."""


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()  # what open() would give: 0o666 minus the umask at import


# ------------------------------------------------------------------ atomic files
@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path in ``path``'s folder; on success it is renamed over ``path``, on
    any failure (exceptions, KeyboardInterrupt, SystemExit) it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's process) or cannot tell: assume alive
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove temporary files ``.NAME.PID.XXXX.tmp`` in ``folder`` (not recursive) whose writer
    process no longer runs; returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


# ------------------------------------------------------------------ strict JSON
def finite_or_none(obj, where: str = "", found: list | None = None):
    """A copy of ``obj`` (dicts, lists, numbers, numpy scalars and arrays) with NaN and ±inf
    replaced by None; the keys of the replaced values are appended to ``found``."""
    found = found if found is not None else []
    if isinstance(obj, dict):
        return {k: finite_or_none(v, f"{where}.{k}" if where else str(k), found)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v, f"{where}[{i}]", found) for i, v in enumerate(obj)]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalars, arrays
        return finite_or_none(obj.tolist(), where, found)
    if isinstance(obj, float) and not math.isfinite(obj):
        found.append(where or "value")
        return None
    return obj


def strict_json(obj, name: str = "JSON") -> str:
    """``json.dumps(..., allow_nan=False)`` after NaN/inf → null, with one warning that names
    the keys (``name`` is the file, for the message)."""
    found: list[str] = []
    clean = finite_or_none(obj, "", found)
    if found:
        shown = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        warnings.warn(f"{name}: {len(found)} undefined (NaN or infinite) value(s) written as "
                      f"null: {shown}", NonFiniteWarning, stacklevel=3)
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def write_json(path: Path, obj) -> None:
    """Strict JSON (NaN/inf → null with a warning), written atomically."""
    path = Path(path)
    atomic_write_bytes(path, strict_json(obj, path.name).encode())


# ------------------------------------------------------------------ --out checks
def check_out_dir(out, flag: str = "--out") -> None:
    """Refuse, before any work and without writing, an output folder that is a file, lies
    below a file, or cannot be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FolderError(f"{flag} {out}: is a file, not a folder; allowed: a writable folder "
                          "(created if missing)")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise FolderError(f"{flag} {out}: {probe} is a file, so the folder cannot be created; "
                          "allowed: a writable folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "the folder" if probe == out else f"its parent {probe}"
        raise FolderError(f"{flag} {out}: {what} is not writable; allowed: a writable folder")


# ------------------------------------------------------------------ the folder lock
def _start_ticks(pid: int) -> str | None:
    """Start time of a process (clock ticks since boot, /proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holder_info(command: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "pid_start": _start_ticks(os.getpid())}


def _read_lock(lock: Path) -> dict | None:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else None
    except (OSError, ValueError):
        return None


def _is_stale(info: dict | None, lock: Path) -> bool:
    """True when the holder is known to be gone: same host and its pid is not running (or runs
    another process, started at another time).  An unreadable lock older than a minute (a
    crash between creating and writing it, without ``os.link``) is stale too."""
    if info is None:
        try:
            return time.time() - lock.stat().st_mtime > 60
        except OSError:
            return True
    if info.get("host") != socket.gethostname():
        return False  # cannot see the other host's processes
    pid = info.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return True
    recorded, now = info.get("pid_start"), _start_ticks(pid)
    return recorded is not None and now is not None and recorded != now


def _describe(info: dict | None) -> str:
    if info is None:
        return "an unknown process (the lock file cannot be read)"
    return (f"pid {info.get('pid')} on host {info.get('host')} since {info.get('started')} "
            f"(command: {info.get('command')})")


def _create_lock(lock: Path, payload: bytes) -> bool:
    """Create ``lock`` with ``payload`` atomically; False if it exists."""
    fd, tmp = tempfile.mkstemp(dir=lock.parent, prefix=f".{lock.name}.{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        try:
            os.link(tmp, lock)  # atomic and exclusive: fails if the lock exists
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network or FAT file systems)
            try:
                fd2 = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
            except FileExistsError:
                return False
            with os.fdopen(fd2, "wb") as f:
                f.write(payload)
            return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _break_stale(lock: Path, info: dict | None) -> None:
    """Remove a stale lock, unless another run replaced it meanwhile (then put it back)."""
    aside = lock.with_name(f"{lock.name}.stale.{os.getpid()}")
    try:
        os.replace(lock, aside)
    except FileNotFoundError:
        return
    now = _read_lock(aside)
    if info is not None and (now or {}).get("pid") != info.get("pid"):
        with contextlib.suppress(OSError):  # a fresh lock: restore it if nothing took its place
            os.link(aside, lock)
    aside.unlink(missing_ok=True)
    warnings.warn(f"{lock.parent}: removed the stale lock of {_describe(info)}: that process "
                  "no longer runs", stacklevel=4)


def acquire(folder: Path, command: str) -> bool:
    """Take ``folder``'s lock (creating the folder); returns True if the folder was created.
    Re-entrant within one process.  Raises FolderError naming the holder if another live run
    owns it."""
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key] += 1
        return False
    check_out_dir(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    payload = json.dumps(_holder_info(command), indent=1).encode()
    for _ in range(5):
        if _create_lock(lock, payload):
            _HELD[key] = 1
            remove_stale_temps(folder)
            return created
        info = _read_lock(lock)
        if info is not None and info.get("pid") == os.getpid() and \
                info.get("host") == socket.gethostname():
            _HELD[key] = 1  # ours, from an earlier acquire that was not released
            return created
        if not _is_stale(info, lock):
            raise FolderError(
                f"output folder {folder} is in use by {_describe(info)}; one run at a time may "
                "write there: wait for it to finish or choose another --out (if that process "
                f"is gone, delete {lock})")
        _break_stale(lock, info)
    raise FolderError(f"output folder {folder}: could not take its lock {lock} (other runs "
                      "keep taking it); try again")


def release(folder: Path, remove_if_empty: bool = False) -> None:
    """Release this process's lock of ``folder`` (the outermost release removes the file);
    with ``remove_if_empty``, also remove the folder if nothing else is in it."""
    folder = Path(folder)
    key = str(folder.resolve())
    depth = _HELD.get(key, 0)
    if depth > 1:
        _HELD[key] = depth - 1
        return
    _HELD.pop(key, None)
    lock = folder / LOCK_NAME
    info = _read_lock(lock)
    if info is not None and info.get("pid") == os.getpid():
        lock.unlink(missing_ok=True)
    if remove_if_empty:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty


@contextlib.contextmanager
def folder_lock(folder: Path, command: str | None = None):
    """``with folder_lock(out, "nanotransport run ..."):`` own ``out`` for the block; a folder
    this call created is removed again if the block fails and leaves it empty."""
    command = command or " ".join(sys.argv)
    created = acquire(folder, command)
    ok = False
    try:
        yield Path(folder)
        ok = True
    finally:
        release(folder, remove_if_empty=created and not ok)
