"""The clip table every dataset produces, and the split/fold facts its protocol needs."""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from ..audio import AudioError, load_clip
from ..config import InputConfig
from ..errors import UserError
from .fingerprint import content_digests

CLIP_COLUMNS = ("clip_id", "path", "label", "fold", "split")


class DatasetError(UserError):
    """A dataset copy that cannot be used as configured; the message says what to fix."""


@dataclass
class ClipSource:
    """A dataset as elmarc sees it.

    clips: one row per clip with columns
        clip_id  stable id relative to the root (e.g. 'blues/blues.00029')
        path     absolute file path ('' for generated clips)
        label    class name
        fold     k-fold index (0-based), -1 when the dataset has predefined splits
        split    'train' / 'valid' / 'test' for predefined splits, '' otherwise
    scheme: 'predefined' (train/valid/test) or 'folds'.
    protocol: the protocol the dataset's publication uses (protocol=auto).
    """

    name: str
    clips: pd.DataFrame
    scheme: str
    root: str = ""
    extra_identity: dict = field(default_factory=dict)
    protocol: str = "paper"          # the dataset's natural protocol (protocol=auto picks it)
    fingerprints: Path | None = None     # where the clips' content digests are remembered (<cache_dir>/fingerprints)
    _identity: dict | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        missing = set(CLIP_COLUMNS) - set(self.clips.columns)
        if missing:
            raise ValueError(f"clip table of {self.name} lacks columns {sorted(missing)}")
        if self.scheme not in ("predefined", "folds"):
            raise ValueError(f"unknown split scheme {self.scheme!r}")
        self.clips = self.clips.reset_index(drop=True)
        twins = self.clips[self.clips["clip_id"].duplicated(keep=False)]
        if len(twins):
            first = twins["clip_id"].iloc[0]
            files = twins.loc[twins["clip_id"] == first, "path"].tolist()
            raise DatasetError(f"dataset {self.name!r}: {len(twins)} files share a clip id, e.g. {first!r}: {files}.\n"
                               f"  Fix: keep one file per clip (a name with two extensions is one clip twice).")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> np.ndarray:
        return self.clips["label"].to_numpy()

    def assignment(self) -> pd.DataFrame:
        """clip_id, fold, split of every clip: this run's folds and splits (the classify and train stages use these)."""
        return self.clips[[c for c in ("clip_id", "fold", "split") if c in self.clips]]

    def load(self, index: int, cfg: InputConfig) -> np.ndarray:
        """Resampled mono audio of clip ``index``: (time,) float32 at cfg.sample_rate."""
        return load_clip(self.clips.at[index, "path"], cfg)

    def failure_reason(self, index: int, exc: Exception) -> str:
        """Why clip ``index`` was skipped: an AudioError already names the file; anything else gets it here."""
        if isinstance(exc, AudioError):
            return str(exc)
        where = self.clips.at[index, "path"] or self.clips.at[index, "clip_id"]
        return f"{where}: {type(exc).__name__}: {exc}"

    def fold_ids(self) -> list[int]:
        """The dataset's fold numbers (0-based, as in results.csv); [-1] for predefined splits."""
        return sorted(set(self.clips["fold"].astype(int)))

    def without_folds(self, folds: list[int]) -> ClipSource:
        """This dataset with the clips of ``folds`` left out (a search's report folds: the search never reads
        them); refuses folds it does not have, and a dataset with predefined splits."""
        folds = sorted({int(f) for f in folds})
        if not folds:
            return self
        if self.scheme != "folds":
            raise DatasetError(f"holdout_folds={folds}: dataset {self.name!r} has predefined train/valid/test splits, "
                               f"not folds.\n  Fix: leave holdout_folds out (a search on it scores the valid split).")
        have = self.fold_ids()
        unknown = [f for f in folds if f not in have]
        if unknown:
            raise DatasetError(f"holdout_folds={folds}: dataset {self.name!r} has no fold {unknown} (its folds: {have}, "
                               f"0-based as in results.csv).\n  Fix: name folds it has.")
        if len(have) - len(folds) < 2:
            raise DatasetError(f"holdout_folds={folds}: dataset {self.name!r} keeps {len(have) - len(folds)} of its "
                               f"folds {have}; a cross-validated score needs 2.\n  Fix: hold out fewer folds.")
        out = copy.copy(self)        # a copy keeps a subclass's own fields (a synthetic source's generator settings)
        out.clips = self.clips[~self.clips["fold"].astype(int).isin(folds)].reset_index(drop=True)
        out.extra_identity = {**self.extra_identity, "without_folds": folds}
        out._identity = None
        return out

    def identity(self) -> dict:
        """What makes this dataset's features what they are: its name, and every clip's id, label and content
        (a digest of its file's bytes; not the root, so a copy elsewhere is the same dataset). Computed once."""
        if self._identity is None:
            digests = content_digests(self.clips["path"].tolist(), self.root, self.fingerprints)
            h = hashlib.sha256()
            for clip_id, label, digest in zip(self.clips["clip_id"], self.clips["label"], digests):
                h.update(f"{clip_id}\t{label}\t{digest}\n".encode())
            self._identity = {"dataset": self.name, "n_clips": len(self), "content_sha256": h.hexdigest(), **self.extra_identity}
        return self._identity


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each item: stratified, shuffled with a fixed seed over the given (sorted) order."""
    folds = np.full(len(labels), -1, dtype=int)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        folds[test] = k
    return folds


def require_root(name: str, root: str | None, layout: str, override: str = "dataset.root") -> Path:
    """The dataset root as a Path, or a DatasetError that says what is expected and how to set it."""
    if not root:
        raise DatasetError(
            f"dataset {name!r}: no root given.\n  Expected layout under the root:\n{layout}\n"
            f"  Fix: add {override}=/path/to/your/{name} to the command line."
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(
            f"dataset {name!r}: root {str(path)!r} does not exist or is not a directory.\n"
            f"  Expected layout under the root:\n{layout}\n"
            f"  Fix: point {override}=... at your local copy of {name}."
        )
    return path.resolve()


def missing_files_error(name: str, root: Path, missing: list[str], total: int, layout: str) -> DatasetError:
    shown = "\n".join(f"    {m}" for m in missing[:5])
    more = f"\n    ... and {len(missing) - 5} more" if len(missing) > 5 else ""
    return DatasetError(
        f"dataset {name!r}: {len(missing)} of {total} listed files are missing under root {str(root)!r}:\n"
        f"{shown}{more}\n  Expected layout under the root:\n{layout}\n"
        f"  Fix: complete the copy, or point dataset.root=... at a complete one."
    )
