"""Files that are never half-written nor trusted unchecked: atomic writes, advisory locks, manifests.

A finished cache entry carries a manifest (in its completion marker): the size and checksum of each
payload file. ``verify`` re-checks them before the payload is used; ``move_aside`` keeps a damaged
file for the user instead of deleting it. A write that fails for lack of space or permission raises
one CacheWriteError naming the folder, its free space and what to do.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import mmap
import os
import secrets
import shutil
import time
from pathlib import Path

import numpy as np
import xxhash

from .errors import UserError


class CacheError(UserError):
    """A cache entry that cannot be used as it is; the message names it and what to do."""


class CacheWriteError(CacheError):
    """The cache folder cannot take a write (full, read-only, no permission)."""


# the write failures a user can fix by freeing space or pointing the cache elsewhere
USER_FIXABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_failure(path: Path, exc: OSError) -> CacheWriteError:
    """The one clear message for a write the file system refused."""
    folder = path.parent
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    try:
        free = f"{shutil.disk_usage(probe).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "the file system is read-only"}.get(exc.errno, "no permission to write there")
    fix = "freeing space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "making the folder writable"
    return CacheWriteError(
        f"cannot write {path.name} in {folder}: {what} ({free}; {os.strerror(exc.errno)}).\n"
        f"  Nothing written so far is lost: rerun after {fix} and the job resumes where it stopped,\n"
        f"  or put the cache on another disk with cache_dir=/path/with/space (or ELMARC_CACHE).")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    make_dirs(path.parent)
    # named before it exists: a signal landing just after the create still finds the name to remove
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)   # the umask applies, as to any new file
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if not isinstance(exc, FileExistsError):               # that name was someone else's file: leave it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in USER_FIXABLE:
            raise write_failure(path, exc) from exc
        raise


def file_digest(path: Path) -> str:
    """XXH3-128 of a file: it detects damage, not tampering, and runs several times faster than reading
    the payload back, where SHA-256 would cost more than the read (make bench, section cachecheck)."""


    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return xxhash.xxh3_128(b"").hexdigest()
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:     # hashed in place, no copy
            return xxhash.xxh3_128(view).hexdigest()


def manifest(root: Path, names: list[str]) -> dict:
    """{name: {size, xxh3_128}} of payload files below root (recorded in a completion marker)."""
    return {n: {"size": (root / n).stat().st_size, "xxh3_128": file_digest(root / n)} for n in names}


def check_files(root: Path, files: dict) -> dict[str, str]:
    """{name: what is wrong} for the payload files a manifest lists; {} when every one is there, whole and unchanged."""
    problems = {}
    for name, meta in files.items():
        path = root / name
        if not path.is_file():
            problems[name] = f"{name} is missing"
        elif path.stat().st_size != meta["size"]:
            problems[name] = f"{name} has {path.stat().st_size} bytes, {meta['size']} were written (truncated or replaced)"
        elif file_digest(path) != meta.get("xxh3_128"):
            problems[name] = f"{name} does not match its checksum (changed on disk)"
    return problems


def verify(root: Path, files: dict) -> list[str]:
    """What is wrong with the payload files a manifest lists: [] when every one is there, whole and unchanged."""
    return list(check_files(root, files).values())


def move_aside(paths: list[Path], root: Path) -> Path:
    """Move damaged files into root/damaged-<time>/ (kept for the user, never read again); returns that folder."""
    aside = root / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    aside.mkdir(parents=True, exist_ok=True)
    for p in paths:
        if p.exists() or p.is_symlink():
            os.replace(p, aside / p.name)
    return aside


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_csv(path: Path, table) -> None:
    """A pandas table as CSV, written atomically (a killed job leaves the old file or none, never half of one)."""
    atomic_write_text(path, table.to_csv(index=False))


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def make_dirs(path: Path) -> Path:
    """mkdir -p, with the one clear message when the file system refuses."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in USER_FIXABLE:
            raise write_failure(path / ".", exc) from exc
        raise
    return path


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive advisory lock (released by the kernel if the holder dies)."""
    make_dirs(path.parent)
    try:
        fh = open(path, "a+")
    except OSError as exc:
        if exc.errno in USER_FIXABLE:
            raise write_failure(path, exc) from exc
        raise
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
