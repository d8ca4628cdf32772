import numpy as np
import pytest
import soundfile as sf
import torch

from elmarc.audio import AudioError, InputConfig, decode, fix_length, load_clip, log_mel, logmel_input, resample, waveform_input
from elmarc.frontends.mfcc import MFCC

from reference_numpy import log_mel as np_log_mel
from reference_numpy import mfcc_stats, slaney_filterbank

CFG = InputConfig()


def test_filterbank_matches_numpy_slaney():
    from elmarc.audio import mel_filterbank

    ours = mel_filterbank(CFG).numpy()
    ref = slaney_filterbank(12000, 512, 96, 0.0, 6000.0)
    assert ours.shape == (257, 96)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)   # float32 weights


@pytest.mark.parametrize("seconds", [0.5, 3.0, 31.0])
def test_log_mel_matches_numpy(seconds):
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 12000)) / 12000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    ours = log_mel(x, CFG).numpy()
    ref = np_log_mel(x)
    assert ours.shape == ref.shape == (1 + len(x) // 256, 96)
    np.testing.assert_allclose(ours, ref, atol=5e-3)          # dB; float32 vs float64
    assert ours.min() >= ours.max() - 80.0 - 1e-4             # 80 dB floor


def test_db_floor_uses_whole_clip_before_cropping():
    # loud second half: the floor is set by it although the crop keeps only quiet frames
    x = np.concatenate([1e-4 * np.ones(12000 * 5), np.sin(np.arange(12000 * 40) * 0.3)]).astype(np.float32)
    x[:60000] *= np.random.default_rng(1).standard_normal(60000).astype(np.float32)
    full = np_log_mel(x)
    ours = logmel_input(x, CFG).numpy()
    assert ours.shape == (1376, 96)
    np.testing.assert_allclose(ours, full[:1376], atol=5e-3)


def test_fix_length_crops_from_start_and_repeats_short_clips():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(x, 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(fix_length(x, 25), np.concatenate([x, x, x[:5]]))
    m = torch.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(fix_length(m, 7, axis=0).numpy()[:, 0], [0, 2, 4, 0, 2, 4, 0])
    w = waveform_input(np.ones(1000, np.float32) * np.arange(1000, dtype=np.float32), CFG)
    assert w.shape == (350000,) and float(w[1000]) == 0.0 and float(w[1999]) == 999.0


def test_short_logmel_repeats_frames_of_the_whole_clip():
    x = np.random.default_rng(2).standard_normal(12000).astype(np.float32)   # 1 s -> 47 frames
    full = np_log_mel(x)
    ours = logmel_input(x, CFG).numpy()
    reps = np.concatenate([full] * (-(-1376 // len(full))))[:1376]
    np.testing.assert_allclose(ours, reps, atol=5e-3)


def test_mfcc_matches_numpy():
    rng = np.random.default_rng(3)
    for n in (1000, 12000 * 4):                     # shorter than n_fft (repeated) and a normal clip
        t = np.arange(n) / 12000
        x = (0.2 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.02 * rng.standard_normal(n)).astype(np.float32)
        ours = MFCC()([torch.from_numpy(x)])[0].numpy()
        ref = mfcc_stats(x)
        assert ours.shape == (120,)
        np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=5e-3)


def test_resample_is_band_limited_and_keeps_in_band_tones():
    sr = 44100
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    alias = np.sin(2 * np.pi * 9000 * t).astype(np.float32)   # above the new Nyquist (6 kHz)
    y = resample(tone + alias, sr, 12000)
    assert abs(len(y) - 12000) <= 1
    spec = np.abs(np.fft.rfft(y[1000:11000] * np.hanning(10000)))
    freqs = np.fft.rfftfreq(10000, 1 / 12000)
    peak_1k = spec[np.argmin(abs(freqs - 1000))]
    aliased = spec[np.argmin(abs(freqs - 3000))]                # 9 kHz would fold to 3 kHz
    assert aliased < peak_1k * 1e-3


def test_decode_mixes_to_mono_and_reports_bad_files(tmp_path):
    st = np.stack([np.ones(800) * 0.5, -np.ones(800) * 0.1], axis=1).astype(np.float32)
    sf.write(tmp_path / "st.wav", st, 8000)
    mono, rate = decode(tmp_path / "st.wav")
    assert rate == 8000 and mono.shape == (800,)
    np.testing.assert_allclose(mono, 0.2, atol=1e-4)
    y = load_clip(tmp_path / "st.wav", CFG)
    assert abs(len(y) - 1200) <= 1
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="junk.wav"):
        decode(tmp_path / "junk.wav")
