"""Finding audio files in a user's copy of a dataset."""
from __future__ import annotations

from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".au", ".aiff", ".aif")


def audio_files(root: Path) -> list[Path]:
    """Every path below root that looks like a clip (an audio extension), sorted; hidden files and
    macOS '._' resource forks left out. Paths that are not readable files (a broken link, a folder
    named like one) are kept: the extract stage skips each with its reason, so none vanishes unsaid."""
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
                  and not any(part.startswith(".") for part in p.relative_to(root).parts[:-1]))


def by_stem(files: list[Path]) -> dict[str, Path]:
    """stem -> path; the first (sorted) wins when a stem exists in several formats."""
    out: dict[str, Path] = {}
    for p in files:
        out.setdefault(p.stem, p)
    return out


def package_data(*parts: str) -> Path:
    return Path(__file__).resolve().parents[1].joinpath("data", *parts)
