"""The confirmation of a search: only the held-out folds' clips count, with known accuracies and a paired difference."""
import json

import numpy as np
import optuna
import pandas as pd

from elmarc.search import confirm
from elmarc.search.sweeper import open_storage


def search_dir(tmp_path, holdout, sampler="tpe", scores=(("space/x", 0.9), ("space/y", 0.7)), compare=None):
    d = tmp_path / f"search-{sampler}"
    d.mkdir()
    study = optuna.create_study(study_name="s", storage=open_storage(None, d), direction="maximize")
    study.set_user_attr("definition", {"holdout_folds": holdout, "sampler": sampler})
    pd.DataFrame([{"trial": i, "state": "complete", "frontend": f, "score": v, "same_as": ""}
                  for i, (f, v) in enumerate(scores)]).to_csv(d / "trials.csv", index=False)
    if compare:
        pd.DataFrame([{"frontend": f, "score": v, "error": ""} for f, v in compare.items()]).to_csv(d / "compare.csv", index=False)
    return d


def predictions(tmp_path, correct_on_held_out: dict, wrong_elsewhere=True):
    """A confirm sweep: one job folder per front-end; on folds 0-2 every answer is the opposite of the held-out
    pattern, so a table that read them would show other numbers."""
    sweep = tmp_path / "confirm"
    for j, (fe, pattern) in enumerate(correct_on_held_out.items()):
        rows = []
        for clf in ("svm", "elm", "trained", "trained@1epoch"):
            for fold in range(5):
                for i, ok in enumerate(pattern):
                    right = ok if fold >= 3 else (not ok if wrong_elsewhere else ok)
                    rows.append({"clip_id": f"{fold}-{i}", "fold": fold, "seed": 0, "label": "a",
                                 "predicted": "a" if right else "b", "frontend": fe, "classifier": clf})
        (sweep / str(j)).mkdir(parents=True)
        pd.DataFrame(rows).to_csv(sweep / str(j) / "predictions.csv", index=False)
    return sweep


def test_confirm_counts_only_the_held_out_folds_and_pairs_the_difference(tmp_path):
    s = search_dir(tmp_path, [3, 4])
    c = predictions(tmp_path, {"search/x": [1, 1, 1, 0], "vgg": [1, 0, 0, 0], "7x86": [1, 1, 0, 0]})
    assert confirm.main([str(c), "--search", str(s)]) == 0
    t = pd.read_csv(s / "confirm.csv")
    by = t.set_index("frontend")
    # 8 held-out clips each (folds 3 and 4): 6/8, 2/8, 4/8
    assert by.loc["search/x", "trained"] == 0.75 and by.loc["vgg", "trained"] == 0.25 and by.loc["7x86", "trained"] == 0.5
    assert by.loc["search/x", "trained_clips"] == 8 and by.loc["search/x", "from"] == "search (tpe)"
    assert by.loc["search/x", "search_score"] == 0.9 and np.isnan(by.loc["vgg", "search_score"])
    assert by.loc["search/x", "rank_among_ten"] == 1 and by.loc["7x86", "rank_among_ten"] == 1 and by.loc["vgg", "rank_among_ten"] == 2
    assert by.loc["search/x", "trained_low"] <= 0.75 <= by.loc["search/x", "trained_high"]
    text = (s / "confirm.md").read_text()
    # the pick against the best of the ten (7x86): +0.25 on the same 8 clips
    assert "search/x trained minus the best of the ten trained (7x86" in text and "+25.0 points" in text and "8 clips" in text
    m, lo, hi, n = confirm.paired_difference(confirm.held_out_predictions(c, [3, 4]), "search/x", "7x86")
    assert (m, n) == (0.25, 8) and lo <= m <= hi
    assert json.loads(json.dumps(confirm.held_out(s))) == [3, 4]


def test_each_sampler_is_judged_by_its_own_pick_against_the_best_ten_and_the_tens_pick(tmp_path):
    """Both searches found search/y: random search's best (0.8), TPE's second (0.7).
    The ten's pick by the search score (compare.csv) is vgg, which trains worse than 7x86: both are compared."""
    ten = {"vgg": 0.85, "7x86": 0.6}
    tpe = search_dir(tmp_path, [3, 4], "tpe", (("space/x", 0.9), ("space/y", 0.7)), ten)
    rnd = search_dir(tmp_path, [3, 4], "random", (("space/y", 0.8), ("space/z", 0.75)), ten)
    c = predictions(tmp_path, {"search/x": [1, 1, 1, 0], "search/y": [1, 1, 0, 0], "search/z": [1, 1, 1, 1],
                               "vgg": [1, 0, 0, 0], "7x86": [1, 1, 0, 0]})
    out = tmp_path / "confirm.md"
    assert confirm.main([str(c), "--search", str(tpe), "--search", str(rnd), "--out", str(out)]) == 0
    by = pd.read_csv(out.with_suffix(".csv")).set_index("frontend")
    assert by.loc["vgg", "search_score"] == 0.85 and by.loc["search/y", "search_score"] == 0.8
    assert by.loc["search/y", "from"] == "search (tpe, random)" and by.loc["search/z", "from"] == "search (random)"
    text = out.read_text()
    # on the 8 held-out clips: x 6, y 4, z 8, vgg 2, 7x86 4; a pick is by search score, so z (best trained) is not one
    assert "search (tpe)'s pick search/x trained minus the best of the ten trained (7x86, chosen" in text
    assert "search (tpe)'s pick search/x trained minus the ten's pick by the same search score (vgg, 85.0): +50.0 points" in text
    assert "search (random)'s pick search/y trained minus the best of the ten trained (7x86, chosen on these folds, which favours the ten): +0.0 points" in text
    assert "search (random)'s pick search/y trained minus the ten's pick by the same search score (vgg, 85.0): +25.0 points" in text
    assert "search (tpe)'s pick search/x trained minus search (random)'s pick search/y: +25.0 points" in text


def test_scores_equal_but_for_the_last_bit_are_ties(tmp_path):
    """A mean of fold accuracies summed in another order differs in the last bit: that is a tie (the earlier trial
    first), not a point above the compared front-end."""
    from elmarc.search.report import summary, top

    same = 0.7791666666666667
    cost = {"state": "complete", "same_as": "", "seconds": 1.0, "compute_seconds": 1.0}
    trials = pd.DataFrame([{"trial": 2, "frontend": "space/a", "score": same, **cost},
                           {"trial": 5, "frontend": "space/b", "score": np.nextafter(same, 1), **cost},
                           {"trial": 7, "frontend": "space/c", "score": 0.8, **cost}])
    assert list(top(trials, 3)["trial"]) == [7, 2, 5]
    trials.to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame([{"frontend": "vgg", "score": same, "error": ""}]).to_csv(tmp_path / "s-compare.csv", index=False)
    assert summary(tmp_path).splitlines()[2].split(" | ")[-1] == "1 |"
