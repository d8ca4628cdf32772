"""The proxy study's CSVs (elmarc.report.study): merging across machines, what is left to train, the table."""
import numpy as np
import pandas as pd

from elmarc.report import study

FRONTENDS = ["a", "b", "c", "d"]


def long_rows(conditions: dict, folds=(0, 1, 2), seconds=1.0, dataset="toy", set_name="four"):
    """condition -> per front-end value (the same on every fold, plus a small fold offset)."""
    rows = []
    for cond, values in conditions.items():
        for fe, v in zip(FRONTENDS, values):
            for f in folds:
                rows.append({"dataset": dataset, "set": set_name, "frontend": fe, "width": "small", "protocol": "paper",
                             "seed": 0, "fold": str(f), "condition": cond, "value": v + 0.001 * f, "seconds": seconds})
    return pd.DataFrame(rows)[study.COLUMNS]


def test_merge_keeps_other_rows_and_replaces_same_keys(tmp_path):
    path = tmp_path / "toy-ten.csv"
    first = long_rows({"svm": [0.9, 0.8, 0.7, 0.6], "params": [4, 3, 2, 1]})
    study.write_csv(first, path, "first command")
    trained = long_rows({"trained": [0.5, 0.6, 0.7, 0.8]})
    trained = trained[trained.frontend.isin(["a", "b"])]
    again = long_rows({"svm": [0.1, 0.8, 0.7, 0.6]})                # a rerun of svm on "a" replaces its rows
    study.write_csv(pd.concat([trained, again[again.frontend == "a"]]), path, "second command", merge=True)
    merged = study.read_csv(path)
    assert study.read_commands(path) == ["first command", "second command"]
    assert len(merged) == len(first) + len(trained)
    svm = merged[merged.condition == "svm"].groupby("frontend").value.first()
    np.testing.assert_allclose(svm.to_numpy(), [0.1, 0.8, 0.7, 0.6])
    assert study.untrained(merged, FRONTENDS) == ["c", "d"]
    # without merge the file holds only the new rows
    study.write_csv(trained, path, "third command")
    assert study.read_commands(path) == ["third command"] and len(study.read_csv(path)) == len(trained)


def test_untrained_counts_folds():
    table = long_rows({"svm": [1, 1, 1, 1], "trained": [1, 1, 1, 1]})
    partial = table[~((table.frontend == "b") & (table.condition == "trained") & (table.fold == "2"))]
    assert study.untrained(partial, FRONTENDS) == ["b"]
    assert study.untrained(table, FRONTENDS + ["e"]) == ["e"]


def test_agreement_table_from_csv_rows(tmp_path):
    trained = [0.5, 0.6, 0.7, 0.8]
    table = long_rows({"trained": trained, "svm": [0.2, 0.3, 0.4, 0.5], "elm": [0.8, 0.7, 0.6, 0.5],
                       "params": [1, 2, 4, 3]}, seconds=2.0)
    table.loc[table.condition == "trained", "seconds"] = 100.0
    path = study.write_csv(table, tmp_path / "toy-ten.csv", "cmd")
    agree = study.agreement_table(study.read_csv(path)).set_index("predictor")
    assert agree.loc["svm", "tau"] == 1.0 and agree.loc["elm", "tau"] == -1.0
    np.testing.assert_allclose(agree.loc["params", "tau"], 4 / 6)     # one discordant pair of six
    assert agree.loc["svm", "same_winner"] and agree.loc["svm", "predictor_winner"] == "d"
    assert agree.loc["svm", "seconds_per_architecture"] == 6.0       # three folds x 2 s
    assert agree.loc["svm", "trained_seconds_per_architecture"] == 300.0
    text = study.markdown(agree.reset_index())
    assert "**toy, four** (4 architectures, 3 folds" in text and "| svm | 1.00" in text


def test_named_sets_count_their_architectures():
    assert study.set_size("ten") == 10 and study.set_size("family") == 24 and study.set_size("toy") == 0


def test_tables_command_reads_only_the_csvs(tmp_path):
    trained = long_rows({"trained": [0.5, 0.6, 0.7, 0.8], "svm": [0.2, 0.3, 0.5, 0.4]})
    study.write_csv(trained, tmp_path / "toy-ten.csv", "cmd")
    untrained_only = long_rows({"svm": [0.2, 0.3, 0.5, 0.4]}, dataset="other")
    study.write_csv(untrained_only, tmp_path / "other-ten.csv", "cmd")
    assert study.main(["--tables", str(tmp_path)]) == 0
    agree = pd.read_csv(tmp_path / "agreement.csv")
    assert set(agree.dataset) == {"toy"}                             # a study without training has no row
    np.testing.assert_allclose(agree.set_index("predictor").loc["svm", "tau"], 4 / 6, rtol=1e-5)   # written to 6 digits
    assert (tmp_path / "tau_toy-four.png").stat().st_size > 5000 and not (tmp_path / "tau_other-four.png").exists()
    text = (tmp_path / "agreement.md").read_text()
    assert "**toy, four**" in text and "| predictor | toy, four (4; training 3 s) |" in text
    assert "| svm | 0.67 [" in text
    # a study with only some of its architectures trained stays out of the wide table, and says so
    half = long_rows({"svm": [0.2, 0.3, 0.5, 0.4], "trained": [0.5, 0.6, 0.7, 0.8]}, dataset="half")
    half = half[(half.condition == "svm") | half.frontend.isin(["a", "b", "c"])]
    study.write_csv(half, tmp_path / "half-ten.csv", "cmd")
    assert study.main(["--tables", str(tmp_path)]) == 0
    text = (tmp_path / "agreement.md").read_text()
    assert text.splitlines()[0] == "| predictor | toy, four (4; training 3 s) |"
    assert "half, four (3 of 4 architectures trained)" in text and "**half, four** (3 architectures of 4" in text
    assert "other, four (0 of 4 architectures trained)" in text       # one with no training yet is named too
    assert "| d | 80.1 | 40.1 |" in text            # per front-end, trained first: mean of 0.8, 0.801, 0.802
