"""Which code produced a result: recorded beside benchmark and experiment numbers, because the
engine changes often and a number belongs to the code that ran."""
from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=None)
def code_version() -> dict:
    """SHA-256 of the package's sources and scenario files (``package_sha256``), and the git
    commit of the checkout it was imported from with its modified package files
    (``git_commit``, ``git_modified``), where there is one."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.suffix in (".py", ".toml") and "__pycache__" not in f.parts:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    info = {"package_path": str(root), "package_sha256": h.hexdigest()}
    try:
        git = ["git", "-C", str(root.parent)]
        info["git_commit"] = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True,
                                            text=True, check=True).stdout.strip()
        info["git_modified"] = subprocess.run(
            git + ["status", "--porcelain", "--", str(root)], capture_output=True, text=True,
            check=True).stdout.split("\n")[:-1]
    except (OSError, subprocess.CalledProcessError):
        pass
    return info
