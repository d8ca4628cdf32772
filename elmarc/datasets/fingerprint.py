"""What a clip's file holds, as a key can name it: a digest of its bytes, remembered while the file is unchanged.

The feature and audio keys name each clip's content (XXH3-128 of the file's bytes), so audio changed in
place or a processed copy under the same names is decoded and extracted again, while a copy moved to
another root is not (the root is not in the key). Hashing every file for every job would read the whole
dataset each time, so digests are remembered in ``<cache_dir>/fingerprints/<root hash>.json`` with each
file's size, inode, modification and change times: a write changes the change time (which no user can
set back), and then the file is hashed again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from pathlib import Path

from ..storage import CacheWriteError, atomic_write_text, file_digest

log = logging.getLogger(__name__)


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns]


def _read_memo(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        memo = json.loads(path.read_text())
        if isinstance(memo, dict):
            return memo
    return {}


def content_digests(paths: list[str], root: str, store: Path | None) -> list[str]:
    """One digest per path: the file's XXH3-128, '' for a generated clip (no path), or 'unreadable: <why>'
    for one that cannot be read (it is skipped later, with its reason)."""
    memo_path = store / f"{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.json" if store is not None else None
    memo = _read_memo(memo_path) if memo_path is not None and memo_path.is_file() else {}
    digests, changed = [], False
    for path in paths:
        if not path:
            digests.append("")
            continue
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(f"{path} is not a file")
            known = memo.get(path)
            if isinstance(known, list) and len(known) == 6 and known[:5] == _stamp(st):
                digests.append(str(known[5]))
                continue
            digest = file_digest(Path(path))
            memo[path] = [*_stamp(st), digest]
            changed = True
            digests.append(digest)
        except OSError as exc:
            digests.append(f"unreadable: {type(exc).__name__}")
    if changed and memo_path is not None:
        try:
            atomic_write_text(memo_path, json.dumps(memo))
        except CacheWriteError as exc:             # the digests hold for this job; the next one hashes again
            log.warning("could not remember the clips' digests: %s", exc)
    return digests
