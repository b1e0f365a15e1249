"""Subject-grouped, score-stratified folds: guarantees, determinism, splits.json round trips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loes.data import SIDES, Fold, Splits, make_folds, score_bins
from loes.errors import LoesError


def cohort(
    n_subjects: int = 30, seed: int = 0, max_sessions: int = 6, sites: int = 0
) -> pd.DataFrame:
    """A skewed cohort like the lab's: many zeros, a long tail, 1-``max_sessions`` sessions."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        base = 0.0 if rng.random() < 0.35 else float(rng.exponential(6.0))
        for e in range(int(rng.integers(1, max_sessions + 1))):
            score = min(34.0, round(2 * (base + e * rng.random())) / 2)
            row = {"subject": f"sub-{s:03d}", "session": f"ses-{e:02d}", "loes_score": score}
            if sites:
                row["site"] = f"site-{s % sites}"
            rows.append(row)
    return pd.DataFrame(rows)


def assert_guarantees(splits: Splits, table: pd.DataFrame) -> None:
    subjects = set(table["subject"])
    for repeat in range(splits.repeats):
        folds = [f for f in splits.folds if f.repeat == repeat]
        tested = [s for f in folds for s in f.test]
        assert sorted(tested) == sorted(subjects), "every subject tested exactly once per repeat"
        for fold in folds:
            train, val, test = set(fold.train), set(fold.val), set(fold.test)
            assert train | val | test == subjects
            assert not train & val, "no subject on two sides"
            assert not train & test
            assert not val & test
            assert val <= subjects - test
            assert test
            assert train
            for side in SIDES:
                assert fold.subjects(side) == sorted(fold.subjects(side))
            test_rows = fold.scans(table, "test")
            assert set(test_rows["subject"]) == test
            assert len(test_rows) + len(fold.scans(table, "train")) + len(
                fold.scans(table, "val")
            ) == len(table)


# --- bins ----------------------------------------------------------------------------------


def test_score_bins_keep_ties_together_and_merge_small_bins():
    scores = [0, 0, 0, 0, 1, 2, 3, 8, 12, 20]
    assert score_bins(scores, n_bins=3, min_count=3).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    # a lone severe case is merged into its neighbour instead of making a class of one
    labels = score_bins([0] * 8 + [1, 2, 3, 30], n_bins=4, min_count=3)
    assert np.bincount(labels).min() >= 3
    assert labels[-1] == labels[-2]
    assert score_bins([5.0] * 10, n_bins=5, min_count=2).tolist() == [0] * 10
    assert score_bins([1.0, 2.0], n_bins=5, min_count=5).tolist() == [0, 0]


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.5, 1, 2, 4.5, 9, 15, 21, 34]), min_size=1),
    n_bins=st.integers(1, 10),
    min_count=st.integers(1, 6),
)
def test_score_bins_properties(scores, n_bins, min_count):
    labels = score_bins(scores, n_bins, min_count)
    counts = np.bincount(labels)
    assert labels.shape == (len(scores),)
    assert counts.min() >= min(min_count, len(scores)) or len(counts) == 1
    # bins are ordered: a higher score never falls in a lower bin
    order = np.argsort(scores, kind="stable")
    assert np.all(np.diff(labels[order]) >= 0)


# --- folds ---------------------------------------------------------------------------------


def test_folds_are_grouped_and_complete():
    table = cohort()
    splits = make_folds(table, n_folds=5, repeats=3)
    assert len(splits.folds) == 15
    assert (splits.repeats, splits.n_folds) == (3, 5)
    assert_guarantees(splits, table)
    for fold in splits.folds:
        assert 0.17 <= val_share(fold, table) <= 0.23


def val_share(fold: Fold, table: pd.DataFrame) -> float:
    """The inner validation set's share of the fold's non-test scans."""
    val = len(fold.scans(table, "val"))
    return val / (val + len(fold.scans(table, "train")))


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 1 / 3])
def test_inner_validation_is_balanced_by_scans_not_subjects(fraction):
    # one subject with 8 sessions weighs 8 times a subject with one: a draw of 20% of the
    # subjects held 11-28% of the scans; a draw by scans keeps every fold near the fraction
    rng = np.random.default_rng(1)
    sessions = np.where(rng.random(60) < 0.3, 8, 1)
    table = pd.DataFrame(
        [
            {"subject": f"sub-{s:02d}", "session": f"ses-{e}", "loes_score": float(s % 12 + e)}
            for s in range(60)
            for e in range(sessions[s])
        ]
    )
    splits = make_folds(table, n_folds=5, repeats=2, val_fraction=fraction)
    assert_guarantees(splits, table)
    shares = [val_share(fold, table) for fold in splits.folds]
    assert max(abs(share - fraction) for share in shares) < 0.05, shares


def test_same_seed_same_folds_other_seed_other_folds():
    table = cohort()
    first = make_folds(table, n_folds=5, repeats=2, seed=3)
    shuffled = table.sample(frac=1.0, random_state=1)  # row order does not matter
    assert make_folds(shuffled, n_folds=5, repeats=2, seed=3).folds == first.folds
    assert make_folds(table, n_folds=5, repeats=2, seed=4).folds != first.folds
    tests = [tuple(map(tuple, [f.test for f in first.folds if f.repeat == r])) for r in (0, 1)]
    assert tests[0] != tests[1], "repeats use different splits"


def test_stratification_spreads_severe_subjects():
    table = cohort(n_subjects=60, seed=5)
    mean = table.groupby("subject")["loes_score"].mean()
    severe = set(mean[mean >= np.quantile(mean, 0.8)].index)  # 12 subjects
    mild = set(mean[mean <= np.quantile(mean, 0.3)].index)  # the zeros and near-zeros
    for fold in make_folds(table, n_folds=5).folds:
        test = set(fold.test)
        assert 2 <= len(test & severe) <= 3, "each fold tests its share of severe cases"
        assert 3 <= len(test & mild) <= 5


def test_leave_one_site_out():
    table = cohort(n_subjects=24, sites=3)
    splits = make_folds(table, by_site=True)
    assert splits.parameters["sites"] == ["site-0", "site-1", "site-2"]
    assert splits.parameters["n_folds"] == 3
    assert_guarantees(splits, table)
    for fold in splits.folds:
        assert table[table["subject"].isin(fold.test)]["site"].nunique() == 1
        assert set(table[table["subject"].isin(fold.train)]["site"]) == set(table["site"]) - set(
            table[table["subject"].isin(fold.test)]["site"]
        )


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        (lambda t: t.iloc[:6], {"n_folds": 5}, "5 folds need at least 5 subjects"),
        (lambda t: t, {"n_folds": 1}, "n_folds must be at least 2"),
        (lambda t: t, {"repeats": 0}, "repeats must be at least 1"),
        (lambda t: t, {"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
        (lambda t: t, {"seed": -1}, "seed must be a non-negative integer"),
        (lambda t: t.assign(loes_score=np.nan), {}, "no numeric loes_score"),
        (lambda t: t.drop(columns="session"), {}, "the table has no session column"),
        (lambda t: t, {"by_site": True}, "leave-one-site-out needs a site per scan"),
        (lambda t: t.assign(site="A"), {"by_site": True}, "needs at least 2 sites"),
        (
            lambda t: t.assign(site=[f"s{i % 2}" for i in range(len(t))]),
            {"by_site": True},
            "subjects scanned at several sites",
        ),
        (
            lambda t: t.assign(site=t["subject"].str[-1]),
            {"by_site": True, "repeats": 2},
            "repeats=1",
        ),
    ],
)
def test_bad_requests(change, options, message):
    with pytest.raises(LoesError, match=message):
        make_folds(change(cohort(n_subjects=12, seed=2)), **options)


# --- splits.json ---------------------------------------------------------------------------


def test_splits_json_written_once_then_reused(tmp_path):
    table = cohort(n_subjects=12)
    path = tmp_path / "run" / "splits.json"
    splits = make_folds(table, n_folds=3, repeats=2, seed=7, path=path)
    data = json.loads(path.read_text())
    assert (
        data["parameters"] | {"n_folds": 3, "repeats": 2, "seed": 7, "val_fraction": 0.2}
        == (data["parameters"])
    )
    assert data["parameters"]["method"] == "StratifiedGroupKFold"
    first = data["folds"][0]
    assert (first["repeat"], first["fold"]) == (0, 0)
    assert first["test"] == splits.folds[0].test
    pairs = set(zip(table["subject"], table["session"], strict=True))
    test_scans = {tuple(p) for f in data["folds"] if f["repeat"] == 0 for p in f["scans"]["test"]}
    assert test_scans == pairs
    assert {tuple(p) for p in first["scans"]["val"]} == {p for p in pairs if p[0] in first["val"]}
    # hand edit: swap one test subject with one training subject in repeat 0 fold 0 and 1
    a, b = first["test"][0], data["folds"][1]["test"][0]
    for fold in data["folds"][:2]:
        for side in ("train", "val", "test"):
            fold[side] = sorted({a: b, b: a}.get(s, s) for s in fold[side])
        del fold["scans"]
    path.write_text(json.dumps(data))
    reused = make_folds(table, n_folds=3, repeats=2, seed=7, path=path)
    assert reused.folds[0].test == data["folds"][0]["test"] != splits.folds[0].test
    assert_guarantees(reused, table)


def test_round_trip(tmp_path):
    table = cohort(n_subjects=10)
    splits = make_folds(table, n_folds=2, repeats=2)
    splits.to_json(tmp_path / "s.json")
    again = Splits.from_json(tmp_path / "s.json", table)
    assert again.folds == splits.folds
    assert again.parameters == splits.parameters
    assert again.fold(1, 1) == splits.folds[3]
    assert isinstance(again.folds[0], Fold)


def test_user_file_without_parameters_or_scans_is_accepted(tmp_path):
    table = cohort(n_subjects=4, max_sessions=2)
    ids = sorted(table["subject"].unique())
    folds = [
        {"fold": 0, "train": ids[2:], "test": ids[:2]},
        {"fold": 1, "train": ids[:1], "val": ids[1:2], "test": ids[2:]},
    ]
    (tmp_path / "mine.json").write_text(json.dumps({"folds": folds}))
    splits = make_folds(table, n_folds=5, path=tmp_path / "mine.json")
    assert splits.folds[1] == Fold(0, 1, ids[:1], ids[1:2], ids[2:])
    assert_guarantees(splits, table)


def write_folds(tmp_path, folds, **extra):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"folds": folds, **extra}))
    return path


@pytest.mark.parametrize(
    ("folds", "message"),
    [
        (
            [
                {"fold": 0, "train": ["a", "b"], "test": ["b", "c"]},
                {"fold": 1, "train": ["b", "c"], "test": ["a"]},
            ],
            "repeat 0 fold 0: b is in both train and test.",
        ),
        (
            [
                {"fold": 0, "train": ["b", "c"], "test": ["a"]},
                {"fold": 1, "train": ["b", "c"], "test": ["a"]},
            ],
            "repeat 0: b, c never tested",
        ),
        (
            [
                {"fold": 0, "train": ["b", "c"], "test": ["a"]},
                {"fold": 1, "train": ["c"], "test": ["a", "b"]},
                {"fold": 2, "train": ["a", "b"], "test": ["c"]},
            ],
            "repeat 0: a is tested in folds 0, 1; test each subject once per repeat.",
        ),
        (
            [
                {"fold": 0, "train": ["b", "c", "zed"], "test": ["a"]},
                {"fold": 1, "train": ["a"], "test": ["b", "c"]},
            ],
            "repeat 0 fold 0: zed is not in the table.",
        ),
        (
            [
                {"fold": 0, "train": ["b"], "test": ["a"]},
                {"fold": 1, "train": ["a"], "test": ["b", "c"]},
            ],
            "repeat 0 fold 0: c is on no side",
        ),
        (
            [
                {"fold": 0, "train": ["b", "c"], "test": ["a"],
                 "scans": {"test": [["a", "ses-1"]]}},
                {"fold": 1, "train": ["a"], "test": ["b", "c"],
                 "scans": {"test": [["b", "ses-1"], ["c", "ses-1"], ["c", "ses-9"]]}},
            ],
            "repeat 0 fold 1: scan c ses-9 listed in test is not in the table.",
        ),
        (
            [
                {"fold": 0, "train": ["b", "c"], "test": ["a"],
                 "scans": {"test": [["a", "ses-1"]]}},
                {"fold": 1, "train": ["a"], "test": ["b", "c"],
                 "scans": {"test": [["b", "ses-1"]]}},
            ],
            "repeat 0 fold 1: scans.test lacks c ses-1, c ses-2, which the table has",
        ),
        (
            [{"fold": 0, "train": "a", "test": ["b"]}],
            '"train" must be a list of subject ids',
        ),
        ([{"fold": "0", "train": [], "test": []}], '"repeat" and "fold" must be integers'),
    ],
)  # fmt: skip
def test_bad_splits_files_are_rejected(tmp_path, folds, message):
    table = pd.DataFrame(
        {
            "subject": ["a", "b", "c", "c"],
            "session": ["ses-1", "ses-1", "ses-1", "ses-2"],
            "loes_score": [0.0, 1.0, 2.0, 3.0],
        }
    )
    with pytest.raises(LoesError) as error:
        Splits.from_json(write_folds(tmp_path, folds), table)
    assert message in str(error.value)
    assert str(tmp_path / "splits.json") in str(error.value)


def test_malformed_and_mismatched_files(tmp_path):
    table = cohort(n_subjects=6)
    path = tmp_path / "splits.json"
    path.write_text("{not json")
    with pytest.raises(LoesError, match=r"is not valid JSON \(line 1, column 2"):
        make_folds(table, n_folds=3, path=path)
    path.write_text("[]")
    with pytest.raises(LoesError, match='has no "folds" list'):
        make_folds(table, n_folds=3, path=path)
    path.unlink()
    make_folds(table, n_folds=3, path=path)
    with pytest.raises(LoesError, match=r"was made with n_folds=3, but n_folds=2 was asked for"):
        make_folds(table, n_folds=2, path=path)
    grown = pd.concat([table, table.iloc[:1].assign(session="ses-99")])
    with pytest.raises(LoesError, match=r"scans\.\w+ lacks sub-000 ses-99, which the table has"):
        make_folds(grown, n_folds=3, path=path)


# --- properties on random cohorts ----------------------------------------------------------

scores = st.one_of(
    st.just(0.0),
    st.sampled_from([0.5, 1.0, 2.0, 3.5, 6.0, 9.0, 13.5, 21.0, 34.0]),
)


@st.composite
def random_cohorts(draw):
    n_subjects = draw(st.integers(2, 30))
    skew = draw(st.booleans())  # most subjects at 0 and a few severe ones
    rows = []
    for s in range(n_subjects):
        n_sessions = draw(st.integers(1, 12 if s % 7 == 0 else 3))
        base = 0.0 if skew and s % 5 else draw(scores)
        for e in range(n_sessions):
            rows.append({"subject": f"s{s}", "session": f"e{e}", "loes_score": base})
    n_folds = draw(st.integers(2, min(6, n_subjects)))
    return pd.DataFrame(rows), n_folds


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cohort_and_folds=random_cohorts(),
    repeats=st.integers(1, 2),
    seed=st.integers(0, 2**16),
    val_fraction=st.sampled_from([0.0, 0.1, 0.2, 0.5]),
)
def test_split_guarantees_on_random_cohorts(cohort_and_folds, repeats, seed, val_fraction):
    table, n_folds = cohort_and_folds
    splits = make_folds(
        table, n_folds=n_folds, repeats=repeats, seed=seed, val_fraction=val_fraction
    )
    assert len(splits.folds) == n_folds * repeats
    assert_guarantees(splits, table)
    for fold in splits.folds:
        pool = len(fold.train) + len(fold.val)
        if val_fraction > 0 and pool >= 2:
            assert 1 <= len(fold.val) < pool
        else:
            assert fold.val == []
    # the checks a hand-written file goes through accept what we make
    splits.check(table)
