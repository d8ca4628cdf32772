"""The features entry's key: a format bump leaves older entries unread, and says so once."""
import json

from elmarc.extract import feature_cache
from elmarc.extract.feature_cache import FeatureEntry
from elmarc.extract.key import FORMAT

from helpers import log_text


def test_entries_of_an_older_format_are_named_once_and_never_read(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(feature_cache, "_noted", set())
    old = tmp_path / "features" / "synthetic-7x96-small-s0-0123456789abcdef"
    old.mkdir(parents=True)
    (old / "spec.json").write_text(json.dumps({"format": FORMAT - 1}))
    (old / "done.json").write_text("{}")
    caplog.set_level("INFO")
    spec = {"format": FORMAT, "dataset": {"n_clips": 3}}
    entry = FeatureEntry.for_spec(tmp_path, spec, "synthetic-7x96-small-s0")
    assert entry.root != old and not entry.is_complete()                 # the old one is not this job's entry
    assert log_text(caplog).count("older format") == 1 and old.name in log_text(caplog)
    FeatureEntry.for_spec(tmp_path, {**spec, "seed": 1}, "synthetic-7x96-small-s0")
    assert log_text(caplog).count("older format") == 1                   # once per cache folder and process
