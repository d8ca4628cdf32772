"""Finding audio files in a user's copy of a dataset."""
from __future__ import annotations

from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".au", ".aiff", ".aif")


def audio_files(root: Path) -> list[Path]:
    """Every audio file below root, sorted (hidden files and macOS '._' resource forks left out)."""
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and not p.name.startswith("."))


def by_stem(files: list[Path]) -> dict[str, Path]:
    """stem -> path; the first (sorted) wins when a stem exists in several formats."""
    out: dict[str, Path] = {}
    for p in files:
        out.setdefault(p.stem, p)
    return out


def package_data(*parts: str) -> Path:
    return Path(__file__).resolve().parents[1].joinpath("data", *parts)
