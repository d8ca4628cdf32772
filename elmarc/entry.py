"""One cache entry's life, written once: key, lock, atomic payload, manifest, check, damage set aside, leftovers cleaned.

Every cache of elmarc (decoded audio, features, result rows with their predictions, training runs) is
a folder of this form:

    spec.json       what made the entry (its folder name ends in a hash of it); absent for an entry inside another
    <payload>       files written atomically (a temporary file in the folder, fsync, rename)
    done.json       written last: {"files": {name: {size, xxh3_128}}, ...what the writer adds}
    .lock           flock held by the one process that writes the entry; others wait
    damaged-<time>/ files that failed their check, kept for the user, never read again

A finished entry is trusted only after its payload matches the manifest. A killed writer leaves at most
hidden temporaries (``.<name>.<random>.tmp``): only the lock holder writes, so whoever takes the lock next
removes them. ``python -m elmarc.cache --verify`` walks every entry of every kind with the same check.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

from .storage import (
    CacheError,
    atomic_write_bytes,
    atomic_write_text,
    check_files,
    file_lock,
    make_dirs,
    manifest,
    move_aside,
    stable_hash,
)

log = logging.getLogger(__name__)
MARKER = "done.json"
SPEC = "spec.json"
LOCK = ".lock"
TEMPORARY = re.compile(r"^\..+\.tmp$")          # atomic_write_bytes' temporaries


def safe_name(text: str) -> str:
    """A string as a file name: letters, digits, '_', '.', '-' kept, anything else (a '/', '..') replaced."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip(".")
    return name or "_"


def leftovers(folder: Path) -> list[Path]:
    """Temporaries a killed writer left below folder (outside damaged-* folders)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob(".*.tmp"):
        if TEMPORARY.match(path.name) and not any(p.name.startswith("damaged-") for p in path.relative_to(folder).parents):
            found.append(path)
    return sorted(found)


class CacheEntry:
    """A cache folder with a completion marker; subclasses add what their payload is."""

    def __init__(self, root: str | Path, spec: dict | None = None):
        self.root = Path(root)
        self.spec = spec
        self._clean_at: int | None = None

    @staticmethod
    def folder_for(base: str | Path, readable: str, spec: dict, digits: int = 16) -> Path:
        """Where the entry for spec lives under base: <readable>-<hash of spec>."""
        return Path(base) / f"{safe_name(readable)}-{stable_hash(spec)[:digits]}"

    @classmethod
    def keyed(cls, base: str | Path, readable: str, spec: dict, digits: int = 16):
        """The entry for spec under base."""
        return cls(cls.folder_for(base, readable, spec, digits), spec)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    @property
    def key(self) -> str:
        return self.root.name

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    # -- life -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self):
        """Hold the entry's lock (others wait); on taking it, remove what a killed writer left."""
        make_dirs(self.root)
        with file_lock(self.root / LOCK):
            for path in leftovers(self.root):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                log.info("removed %s, left by a writer that was stopped", path)
            yield self

    def begin(self) -> None:
        """Create the entry and record its spec; refuse one made by another spec (a hash collision or a hand edit)."""
        make_dirs(self.root)
        if self.spec is None:
            return
        path = self.root / SPEC
        wanted = json.loads(json.dumps(self.spec, default=str))
        if path.is_file():
            try:
                same = json.loads(path.read_text()) == wanted
            except ValueError:
                same = False
            if not same:
                raise CacheError(f"cache entry {self.root} holds another spec than this job's ({path}).\n"
                                 f"  Fix: move that folder away; this job then computes its own.")
        else:
            atomic_write_text(path, json.dumps(self.spec, indent=2, sort_keys=True, default=str))

    def write_bytes(self, name: str, data: bytes) -> Path:
        atomic_write_bytes(self.root / name, data)
        return self.root / name

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode())

    def finish(self, names: list[str], **info) -> dict:
        """Write the marker last: the manifest of the payload files `names` and what the writer adds."""
        content = {**info, "files": manifest(self.root, sorted(names))}
        atomic_write_text(self.marker, json.dumps(content, indent=1, default=str))
        self._clean_at = None
        return content

    # -- reading --------------------------------------------------------------------------
    def is_complete(self) -> bool:
        """Finished (its marker is written); whether it is intact is problems()' answer."""
        return self.marker.is_file()

    def info(self) -> dict:
        return json.loads(self.marker.read_text())

    def damaged(self) -> dict[str, str]:
        """{payload file: what is wrong} of a finished entry ({MARKER: ...} when the marker itself is unreadable)."""
        try:
            files = self.info()["files"]
            if not isinstance(files, dict):
                raise ValueError("its manifest is not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return {MARKER: f"{MARKER} is unreadable ({type(exc).__name__}: {exc})"}
        return check_files(self.root, files)

    def problems(self) -> list[str]:
        """What is wrong with a finished entry ([] when whole and unchanged). A clean answer holds while the
        marker is the one checked, so stages of one job that ask in turn hash the payload once."""
        stamp = self.marker.stat().st_mtime_ns if self.marker.is_file() else None
        if stamp is not None and stamp == self._clean_at:
            return []
        problems = list(self.damaged().values())
        self._clean_at = stamp if not problems else None
        return problems

    def companions(self, name: str) -> list[str]:
        """Files set aside with a damaged one (a chunk's audio with its index, say)."""
        return [name]

    def set_aside_if_damaged(self, everything: bool = False) -> list[str]:
        """A finished entry that fails its check: say so, move the damaged files (every file of the folder when
        `everything`) and the marker into damaged-<time>/, and return the problems; [] when intact or unfinished."""
        if not self.is_complete():
            return []
        bad = self.damaged()
        if not bad:
            return []
        if everything:
            names = [p.name for p in self.root.iterdir() if p.is_file() and p.name not in (LOCK, SPEC)]
        else:
            names = [c for n in bad if n != MARKER for c in self.companions(n)] + [MARKER]
        aside = move_aside([self.root / n for n in dict.fromkeys(names)], self.root)
        self._clean_at = None
        log.warning("cache entry %s is damaged (%s); moved to %s and computed again", self.root,
                    "; ".join(bad.values())[:400], aside)
        return list(bad.values())

    def read(self, everything: bool = True) -> dict | None:
        """The marker of a finished, intact entry, or None (unfinished, or damaged: then set aside first)."""
        if self.set_aside_if_damaged(everything):
            return None
        return self.info() if self.is_complete() else None
