"""Input pipeline of SPEC section 1: decode, mix, resample, fix length, log-mel.

Every function here is pure: arrays in, arrays out. Shapes are given as
(time,) for mono audio and (frames, bands) for spectrograms, the layout of the
reference code (time on the first axis, frequency on the second).
"""
from __future__ import annotations

import os
import struct
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio.functional as AF
from scipy.signal import resample_poly

from .config import InputConfig
from .errors import UserError


class AudioError(UserError):
    """A file that cannot be turned into a usable clip; the message says why."""


# ----------------------------------------------------------------------------- decoding

def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any file soundfile can (WAV, FLAC, OGG, MP3, AU); return (mono float32 (time,), rate).

    Multichannel audio is averaged to mono. No amplitude normalisation (SPEC 1).
    Raises AudioError naming the file for unreadable, empty or non-finite audio.
    """
    path = Path(path)
    unusable = why_not_a_file(path)
    if unusable:
        raise AudioError(f"{path} {unusable}")
    try:
        with sf.SoundFile(str(path)) as fh:
            rate = fh.samplerate
            data = fh.read(dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(f"cannot decode {path} (corrupt, not audio, or an unsupported format): {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path} contains no samples (zero-length audio)")
    missing = missing_bytes(path)
    if missing > 0:
        # the header promises more than the file holds: a partial download or copy
        raise AudioError(f"{path} is truncated: its header declares {missing} more bytes of audio than the file holds")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path} contains NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def why_not_a_file(path: Path) -> str:
    """'' for a readable regular file (or a link to one), else why not, as the skip reason says it."""
    if path.is_symlink() and not path.exists():
        return f"is a broken symbolic link (to {os.readlink(path)}): the file it points to is gone"
    if not path.exists():
        return "does not exist (it vanished after the dataset was listed)"
    if path.is_dir():
        return "is a folder, not an audio file"
    if not path.is_file():
        return "is not a regular file (a device, pipe or socket)"
    if not os.access(path, os.R_OK):
        return "cannot be read: no permission"
    return ""


def missing_bytes(path: Path) -> int:
    """Bytes of audio data a WAV (RIFF) or AU header declares beyond the end of the file (0 if none or unknown).

    libsndfile quietly reads what is there, so a partial copy would pass as a shorter clip.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            pos = 12
            while pos + 8 <= size:
                fh.seek(pos)
                cid, clen = struct.unpack("<4sI", fh.read(8))
                if cid == b"data":
                    return max(0, pos + 8 + clen - size) if clen != 0xFFFFFFFF else 0
                pos += 8 + clen + (clen & 1)
            return 0
        if head[:4] == b".snd":
            offset, length = struct.unpack(">II", head[4:12])
            return max(0, offset + length - size) if length != 0xFFFFFFFF else 0
    return 0


def resample(audio: np.ndarray, orig_rate: int, target_rate: int, method: str = "soxr_hq") -> np.ndarray:
    """Band-limited resampling of (time,) float32 audio (SPEC 1: soxr HQ)."""
    if orig_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    if method == "soxr_hq":

        out = soxr.resample(audio.astype(np.float32, copy=False), orig_rate, target_rate, quality="HQ")
    elif method == "polyphase":


        g = gcd(int(orig_rate), int(target_rate))
        out = resample_poly(audio, target_rate // g, orig_rate // g, window=("kaiser", 14.0))
    else:
        raise ValueError(f"unknown resampler {method!r}; use 'soxr_hq' or 'polyphase'")
    return np.ascontiguousarray(out, dtype=np.float32)


def load_clip(path: str | Path, cfg: InputConfig) -> np.ndarray:
    """Decode, mix to mono and resample one file to cfg.sample_rate: (time,) float32."""
    audio, rate = decode(path)
    out = resample(audio, rate, cfg.sample_rate, cfg.resampler)
    if out.size == 0:
        raise AudioError(f"{path} is too short to resample ({audio.size} samples at {rate} Hz)")
    return out


# ----------------------------------------------------------------------------- fixed length

def fix_length(x: np.ndarray | torch.Tensor, length: int, axis: int = 0):
    """Crop from the start, or repeat the whole clip until long enough and then crop (SPEC 1)."""
    n = x.shape[axis]
    if n == 0:
        raise AudioError("cannot repeat-pad an empty clip")
    if n < length:
        reps = -(-length // n)
        if isinstance(x, torch.Tensor):
            shape = [1] * x.ndim
            shape[axis] = reps
            x = x.repeat(*shape)
        else:
            x = np.concatenate([x] * reps, axis=axis)
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, length)
    return x[tuple(index)]


# ----------------------------------------------------------------------------- spectrograms

def mel_filterbank(cfg: InputConfig, n_fft: int | None = None, n_mels: int | None = None) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised mel filterbank: (n_fft // 2 + 1, n_mels)."""
    n_fft = n_fft or cfg.n_fft
    return AF.melscale_fbanks(
        n_freqs=n_fft // 2 + 1,
        f_min=cfg.f_min,
        f_max=cfg.f_max,
        n_mels=n_mels or cfg.n_mels,
        sample_rate=cfg.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )


def power_spectrogram(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT|^2 of (..., time) audio, centred frames with reflect padding: (..., frames, n_fft//2+1)."""
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    if audio.shape[-1] <= n_fft // 2:
        # reflect padding needs more samples than half a frame: repeat the clip first
        audio = fix_length(audio, n_fft // 2 + 1, axis=-1)
    spec = torch.stft(audio, n_fft, hop_length=hop, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    return (spec.real.square() + spec.imag.square()).transpose(-1, -2)


def power_to_db(power: torch.Tensor, amin: float, top_db: float | None) -> torch.Tensor:
    """10*log10(max(amin, S)) with ref 1, floored at max - top_db; max over the whole input (last two axes)."""
    db = 10.0 * torch.log10(torch.clamp(power, min=amin))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def log_mel(audio: np.ndarray | torch.Tensor, cfg: InputConfig, fbank: torch.Tensor | None = None) -> torch.Tensor:
    """Log-mel of a whole clip (time,) -> (frames, n_mels) float32, before cropping."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    fbank = mel_filterbank(cfg) if fbank is None else fbank
    mel = power_spectrogram(x, cfg.n_fft, cfg.hop_length) @ fbank
    return power_to_db(mel, cfg.amin, cfg.top_db)


def logmel_input(audio: np.ndarray, cfg: InputConfig, fbank: torch.Tensor | None = None) -> torch.Tensor:
    """Model input for spectrogram front-ends: (n_frames, n_mels); the dB floor uses the whole clip."""
    return fix_length(log_mel(audio, cfg, fbank), cfg.n_frames, axis=0).contiguous()


def waveform_input(audio: np.ndarray, cfg: InputConfig) -> torch.Tensor:
    """Model input for waveform front-ends: (n_samples,), the audio repeated then cropped."""
    return torch.from_numpy(np.ascontiguousarray(fix_length(audio, cfg.n_samples)))
