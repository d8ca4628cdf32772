"""Faults a real machine has: damaged cache files, vanished clips, a full or read-only disk, a job killed
mid-write. After each, a rerun gives the results of an undisturbed run, and nothing damaged is read."""
import errno
import os
import signal

import numpy as np
import pandas as pd
import pytest

import elmarc.storage
from elmarc.cache import main as verify_main
from elmarc.errors import UserError
from elmarc.storage import CacheWriteError

import fixtures
from helpers import TINY, log_text, run_job

JOB = [*TINY, "frontend=7x96", "classifier=elm", "extract.batch_size=4"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undisturbed run: its features and result rows."""
    root = tmp_path_factory.mktemp("reference")
    run_job(JOB, root / "run", root / "cache")
    (entry,) = (root / "cache" / "features").iterdir()
    return {"features": np.load(entry / "features.npy"), "rows": rows_of(root / "run")}


def rows_of(run_dir):
    return pd.read_csv(run_dir / "results.csv").drop(columns=["grid_seconds", "extract_seconds"])     # timings


def damage(path, how):
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:                                       # one flipped bit, same size
        i = len(data) - 7
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:])


def feature_entry(cache):
    (entry,) = (cache / "features").iterdir()
    return entry


@pytest.mark.parametrize("name", ["features.npy", "clips.csv"])
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_feature_payload_is_set_aside_and_rebuilt(tmp_path, reference, caplog, name, how):
    run_job(JOB, tmp_path / "a", tmp_path / "cache")
    entry = feature_entry(tmp_path / "cache")
    damage(entry / name, how)
    caplog.set_level("INFO")
    run_job(JOB, tmp_path / "b", tmp_path / "cache")
    assert "is damaged" in log_text(caplog) and name in log_text(caplog)
    (aside,) = entry.glob("damaged-*")
    assert (aside / name).is_file()                           # kept for the user, not deleted
    np.testing.assert_array_equal(np.load(entry / "features.npy"), reference["features"])
    pd.testing.assert_frame_equal(rows_of(tmp_path / "b"), reference["rows"])


def test_classify_alone_never_reads_a_damaged_entry(tmp_path):
    run_job(JOB, tmp_path / "a", tmp_path / "cache")
    damage(feature_entry(tmp_path / "cache") / "features.npy", "flip")
    with pytest.raises(UserError, match="is damaged.*features.npy does not match its checksum"):
        run_job([*JOB, "classifier=svm", "stage=classify"], tmp_path / "b", tmp_path / "cache")


def test_a_damaged_shard_of_an_unfinished_entry_is_extracted_again(tmp_path, reference, caplog):
    run_job([*JOB, "stage=extract"], tmp_path / "a", tmp_path / "cache")
    entry = feature_entry(tmp_path / "cache")
    for name in ("done.json", "features.npy", "clips.csv"):       # as a killed extraction leaves it
        (entry / name).unlink()
    shard = sorted((entry / "shards").glob("b*.npz"))[2]
    damage(shard, "flip")
    caplog.set_level("INFO")
    run_job(JOB, tmp_path / "b", tmp_path / "cache")
    log = log_text(caplog)
    assert f"shard {shard} is damaged" in log and "extracted 4 clips" in log
    np.testing.assert_array_equal(np.load(entry / "features.npy"), reference["features"])


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".npy", ".idx.npz"])
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_audio_chunk_is_decoded_again(tmp_path, reference, caplog, suffix, how):
    run_job(JOB, tmp_path / "a", tmp_path / "cache")
    (audio,) = (tmp_path / "cache" / "audio").iterdir()
    chunk = sorted(audio.glob(f"c*{suffix}"))[0]
    damage(chunk, how)
    for entry in (tmp_path / "cache" / "features").iterdir():    # make the next job read the audio again
        os.rename(entry, tmp_path / "old_entry")
    caplog.set_level("INFO")
    run_job(JOB, tmp_path / "b", tmp_path / "cache")
    assert f"cache entry {audio} is damaged" in log_text(caplog) and chunk.name in log_text(caplog)
    assert any((p / chunk.name).is_file() for p in audio.glob("damaged-*"))
    np.testing.assert_array_equal(np.load(feature_entry(tmp_path / "cache") / "features.npy"), reference["features"])


@pytest.mark.parametrize("which,how", [("rows", "truncate"), ("rows", "flip"), ("rows", "no marker"),
                                       ("predictions", "truncate"), ("predictions", "flip")])
def test_damaged_result_rows_are_fitted_again(tmp_path, reference, caplog, which, how):
    run_job(JOB, tmp_path / "a", tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "results").glob("*/*")
    if how == "no marker":                  # killed between the rows and their marker
        (entry / "done.json").unlink()
    else:
        damage(entry / ("rows.csv" if which == "rows" else "predictions.csv"), how)
    caplog.set_level("INFO")
    run_job(JOB, tmp_path / "b", tmp_path / "cache")
    assert ("is damaged" in log_text(caplog)) == (how != "no marker") and "nothing to fit" not in log_text(caplog)
    pd.testing.assert_frame_equal(rows_of(tmp_path / "b"), reference["rows"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b" / "predictions.csv"), pd.read_csv(tmp_path / "a" / "predictions.csv"))


def killed_at(monkeypatch, suffix):
    """Simulate a kill just before a file ending in `suffix` is renamed into place."""
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(suffix):
            raise KeyboardInterrupt(f"killed while writing {dst}")
        return real(src, dst)

    monkeypatch.setattr(elmarc.storage.os, "replace", replace)


def test_a_kill_during_the_classifier_stage(tmp_path, reference, monkeypatch):
    run_job([*JOB, "stage=extract"], tmp_path / "a", tmp_path / "cache")
    killed_at(monkeypatch, ".csv")
    with pytest.raises(KeyboardInterrupt):
        run_job(JOB, tmp_path / "b", tmp_path / "cache")
    monkeypatch.undo()
    assert not list((tmp_path / "cache" / "results").rglob("*.csv"))          # nothing half-written to read
    run_job(JOB, tmp_path / "c", tmp_path / "cache")
    pd.testing.assert_frame_equal(rows_of(tmp_path / "c"), reference["rows"])


def test_a_kill_during_report_writing(tmp_path, reference, monkeypatch):
    from elmarc.report import write_report

    run_job(JOB, tmp_path / "run", tmp_path / "cache")
    before = (tmp_path / "run" / "report.md").read_text()
    (tmp_path / "run" / "report.md").unlink()
    killed_at(monkeypatch, "report.md")
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path / "run", print_summary=False)
    monkeypatch.undo()
    assert not (tmp_path / "run" / "report.md").exists()                     # none, not half of one
    write_report(tmp_path / "run", print_summary=False)
    assert (tmp_path / "run" / "report.md").read_text() == before


def test_a_report_stopped_half_way_leaves_no_old_report_beside_new_tables(tmp_path, monkeypatch):
    from elmarc.report import write_report

    run_job(JOB, tmp_path / "run", tmp_path / "cache")
    assert (tmp_path / "run" / "report.md").is_file()
    killed_at(monkeypatch, "summary.csv")                                   # a rerun's report, stopped mid-way
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path / "run", print_summary=False)
    monkeypatch.undo()
    assert not (tmp_path / "run" / "report.md").exists()                     # no stale report.md to misread
    write_report(tmp_path / "run", print_summary=False)
    assert (tmp_path / "run" / "report.md").is_file()


def disk_full_after(monkeypatch, n_writes):
    """The file system refuses every write after the first n_writes (ENOSPC at fsync, as a full disk does)."""
    calls = {"n": 0}
    real = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > n_writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(elmarc.storage.os, "fsync", fsync)


def test_a_full_disk_during_extraction_then_resume(tmp_path, reference, monkeypatch, caplog):
    run_job([*JOB, "stage=extract"], tmp_path / "warm", tmp_path / "cache")   # the audio cache, then drop the features
    entry = feature_entry(tmp_path / "cache")
    os.rename(entry, tmp_path / "old_entry")
    disk_full_after(monkeypatch, 4)                  # the job's clips.csv, spec.json, then a few shards
    with pytest.raises(CacheWriteError) as err:
        run_job(JOB, tmp_path / "a", tmp_path / "cache")
    text = str(err.value)
    assert "the disk is full" in text and str(entry / "shards") in text and "MiB free" in text and "cache_dir=" in text
    monkeypatch.undo()
    written = len(list((entry / "shards").glob("b*.npz")))
    assert 1 <= written < 6 and not (entry / "done.json").exists()
    caplog.set_level("INFO")
    run_job(JOB, tmp_path / "b", tmp_path / "cache")
    assert "resuming" in log_text(caplog) and f"extracted {24 - 4 * written} clips" in log_text(caplog)
    np.testing.assert_array_equal(np.load(entry / "features.npy"), reference["features"])
    pd.testing.assert_frame_equal(rows_of(tmp_path / "b"), reference["rows"])


def test_a_full_disk_during_classification(tmp_path, reference, monkeypatch):
    run_job([*JOB, "stage=extract"], tmp_path / "a", tmp_path / "cache")
    disk_full_after(monkeypatch, 1)                        # clips.csv of the job folder, then nothing
    with pytest.raises(CacheWriteError, match="the disk is full"):
        run_job(JOB, tmp_path / "b", tmp_path / "cache")
    monkeypatch.undo()
    run_job(JOB, tmp_path / "c", tmp_path / "cache")
    pd.testing.assert_frame_equal(rows_of(tmp_path / "c"), reference["rows"])


def test_a_read_only_cache_folder(tmp_path, monkeypatch):
    real = os.open

    def refuse(path, flags, *args, **kwargs):
        if str(path).endswith(".tmp"):                      # every atomic write's first step
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(elmarc.storage.os, "open", refuse)
    with pytest.raises(CacheWriteError, match=r"(?s)the file system is read-only.*making the folder writable.*cache_dir=") as err:
        run_job(JOB, tmp_path / "a", tmp_path / "cache")
    assert isinstance(err.value, UserError)                 # one message and exit 2 on the command line


def test_a_signal_just_after_the_temporary_is_created_leaves_nothing(tmp_path, monkeypatch):
    """The handler runs at the first bytecode after the create returns: the temporary must already have a name
    the cleanup knows, and the target stays as it was."""
    from elmarc.errors import Stopped
    from elmarc.storage import atomic_write_bytes
    target = tmp_path / "entry" / "payload.bin"
    atomic_write_bytes(target, b"before")
    real = os.open

    def created_then_signalled(path, flags, *args, **kwargs):
        real(path, flags, *args, **kwargs)
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(elmarc.storage.os, "open", created_then_signalled)
    with pytest.raises(Stopped):
        atomic_write_bytes(target, b"after")
    monkeypatch.undo()
    assert sorted(p.name for p in target.parent.iterdir()) == ["payload.bin"] and target.read_bytes() == b"before"


def test_a_temporary_name_already_taken_is_not_removed(tmp_path, monkeypatch):
    from elmarc.storage import atomic_write_bytes
    taken = tmp_path / ".payload.bin.000000000000.tmp"
    taken.write_bytes(b"someone else's")
    monkeypatch.setattr(elmarc.storage.secrets, "token_hex", lambda n: "0" * 2 * n)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(tmp_path / "payload.bin", b"mine")
    assert taken.read_bytes() == b"someone else's" and not (tmp_path / "payload.bin").exists()


def test_no_clip_vanishes_without_a_word(tmp_path):
    root = fixtures.folder_tree(tmp_path / "data")
    (root / "bird" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")          # a broken link
    (root / "voice" / "odd.flac").mkdir()                                        # a folder named like a clip
    (root / "voice" / ".hidden.wav").write_bytes(b"x")                          # hidden: ignored, as documented
    (root / "voice" / "notes.txt").write_text("not audio")                      # not an audio extension: ignored
    run_job(["dataset=folder", f"dataset.root={root}", "dataset.n_folds=2", "frontend=mfcc",
             "extract.progress=false"], tmp_path / "run", tmp_path / "cache")
    skipped = pd.read_csv(tmp_path / "run" / "skipped.csv")
    reasons = dict(zip(skipped.clip_id, skipped.reason))
    assert set(reasons) == {"bird/gone", "voice/odd"}
    assert "broken symbolic link" in reasons["bird/gone"] and "is a folder" in reasons["voice/odd"]
    clips = pd.read_csv(tmp_path / "run" / "clips.csv")
    assert len(clips) == 18 + 2 and not clips.clip_id.str.contains("hidden|notes").any()


def test_verify_cache_lists_what_it_would_recompute(tmp_path, capsys):
    run_job(JOB, tmp_path / "a", tmp_path / "cache")
    assert verify_main([str(tmp_path / "cache")]) == 0
    assert "all intact" in capsys.readouterr().out
    damage(feature_entry(tmp_path / "cache") / "features.npy", "truncate")
    (audio,) = (tmp_path / "cache" / "audio").iterdir()
    damage(sorted(audio.glob("c*.npy"))[0], "flip")
    assert verify_main(["--verify", str(tmp_path / "cache")]) == 1
    out = capsys.readouterr().out
    assert "2 of 3 entries" in out and "features.npy has" in out and "rebuilt from its shards" in out
    assert "does not match its checksum (changed on disk): that chunk is decoded again" in out


def test_manifests_record_size_and_checksum(tmp_path):
    from elmarc.storage import manifest, verify

    f = tmp_path / "payload.bin"
    f.write_bytes(b"elmarc" * 1000)
    current = manifest(tmp_path, ["payload.bin"])
    assert set(current["payload.bin"]) == {"size", "xxh3_128"} and not verify(tmp_path, current)
    damage(f, "flip")
    assert verify(tmp_path, current) == ["payload.bin does not match its checksum (changed on disk)"]
    damage(f, "truncate")
    assert verify(tmp_path, current) == ["payload.bin has 3000 bytes, 6000 were written (truncated or replaced)"]
