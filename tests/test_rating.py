"""cosmos_llava.rating: online Elo, Bradley-Terry, bootstrap intervals, Arena ranks, the leaderboard CLI."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types

import numpy as np
import pytest

from cosmos_llava.cli import run_command
from cosmos_llava.errors import CosmosLlavaError
from cosmos_llava.rating import (
    Counts, RatingError, add_leaderboard_parser, arena_ranks, bootstrap, bradley_terry, collapse, collapse_arrays,
    elo, format_table, leaderboard, run_leaderboard, win_fraction_matrix,
)

# 14 votes between 4 models, with both kinds of tie; every model wins or ties against some model that
# beats it, so the plain maximum-likelihood ratings are finite.
SMALL = [
    ("turkish-llava", "llava-1.5", "model_a"),
    ("llava-1.5", "turkish-llava", "model_b"),
    ("turkish-llava", "cosmos-mistral", "tie"),
    ("cosmos-mistral", "llava-1.5", "model_a"),
    ("llava-1.5", "cosmos-mistral", "model_a"),
    ("paligemma", "turkish-llava", "model_b"),
    ("paligemma", "llava-1.5", "tie (bothbad)"),
    ("cosmos-mistral", "paligemma", "model_a"),
    ("turkish-llava", "paligemma", "model_b"),
    ("llava-1.5", "paligemma", "model_a"),
    ("turkish-llava", "llava-1.5", "model_b"),
    ("cosmos-mistral", "turkish-llava", "model_b"),
    ("paligemma", "cosmos-mistral", "tie"),
    ("turkish-llava", "cosmos-mistral", "model_a"),
]
SCORE = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


def as_dicts(battles):
    return [{"model_a": a, "model_b": b, "winner": w, "judge": "anon"} for a, b, w in battles]


# ---------------------------------------------------------------------------------------------------
# collapse


def test_collapse_counts_identical_rows_and_keeps_input_order():
    battles = [("b", "a", "model_a"), ("a", "b", "tie"), ("b", "a", "model_a"), ("a", "b", "tie (bothbad)"),
               ("a", "b", "model_b")]
    counts = collapse(battles)
    assert counts.models == ["a", "b"]
    rows = sorted(zip(counts.a_idx.tolist(), counts.b_idx.tolist(), counts.outcome.tolist(), counts.count.tolist()))
    # Both kinds of tie are one outcome (0.5); B's win as (a, b) is outcome 0.
    assert rows == [(0, 1, 0.0, 1), (0, 1, 0.5, 2), (1, 0, 1.0, 2)]
    assert counts.n_battles == 5
    replayed = [(counts.models[counts.a_idx[r]], counts.models[counts.b_idx[r]], counts.outcome[r])
                for r in counts.order]
    assert replayed == [(a, b, SCORE[w]) for a, b, w in battles]
    # dicts (extra keys ignored), tuples and column arrays give the same counts
    for other in (collapse(as_dicts(battles)), collapse_arrays(*map(np.array, zip(*battles)))):
        for field in ("a_idx", "b_idx", "outcome", "count", "order"):
            assert np.array_equal(getattr(other, field), getattr(counts, field)), field
        assert other.models == counts.models


@pytest.mark.parametrize("battles, message", [
    ([("a", "b", "tie"), ("a", "b", "draw")],
     "battle 2: unknown winner 'draw' (expected one of: model_a, model_b, tie, tie (bothbad))"),
    ([{"model_a": "a", "model_b": "b", "winner": None}],
     "battle 1: unknown winner None (expected one of: model_a, model_b, tie, tie (bothbad))"),
    ([("a", "b", "tie"), ("a", "b", "tie"), ("c", "c", "model_a")], "battle 3: model 'c' against itself"),
    ([{"model_a": "a", "winner": "tie"}], "battle 1: missing 'model_b'"),
    ([("a", "", "tie")], "battle 1: model_b must be a non-empty string, got ''"),
    ([], "no battles"),
])
def test_collapse_rejects_bad_battles_with_one_line(battles, message):
    with pytest.raises(RatingError) as info:
        collapse(battles)
    assert str(info.value) == message
    assert isinstance(info.value, CosmosLlavaError)


def test_collapse_arrays_rejects_bad_battles_with_the_same_messages():
    with pytest.raises(RatingError, match=r"^battle 2: unknown winner 'draw' \(expected"):
        collapse_arrays(["a", "a"], ["b", "b"], ["tie", "draw"])
    with pytest.raises(RatingError, match="^battle 2: model 'b' against itself$"):
        collapse_arrays(["a", "b"], ["b", "b"], ["tie", "tie"])
    with pytest.raises(RatingError, match="^no battles$"):
        collapse_arrays([], [], [])


# ---------------------------------------------------------------------------------------------------
# online Elo


def reference_elo(battles, k=4, scale=400, base=10, initial=1000):
    """Chatbot Arena's compute_online_elo, written out: both expectations computed separately."""
    rating = {}
    for model_a, model_b, winner in battles:
        ra = rating.setdefault(model_a, initial)
        rb = rating.setdefault(model_b, initial)
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        sa = {"model_a": 1, "model_b": 0}.get(winner, 0.5)
        rating[model_a] = ra + k * (sa - ea)
        rating[model_b] = rb + k * (1 - sa - eb)
    return rating


def test_elo_by_hand():
    battles = [("a", "b", "model_a"), ("b", "c", "tie"), ("c", "a", "model_b")]
    # After the first battle (equal ratings: expected 0.5), A gains K/2 and B loses it.
    assert elo(battles[:1]) == {"a": 1002.0, "b": 998.0}
    # Second: b (998) ties c (1000): b's expected score is 1 / (1 + 10^(2/400)), so b gains 4 * (0.5 - that).
    gain = 4 * (0.5 - 1 / (1 + 10 ** (2 / 400)))
    assert gain == pytest.approx(0.0115128, abs=1e-7)
    after_two = elo(battles[:2])
    assert after_two["b"] == pytest.approx(998 + gain, abs=1e-12)
    assert after_two["c"] == pytest.approx(1000 - gain, abs=1e-12)
    ratings = elo(battles)
    expected = reference_elo(battles)
    assert ratings.keys() == expected.keys()
    for model in expected:
        assert ratings[model] == pytest.approx(expected[model], abs=1e-9)
    assert ratings["a"] == pytest.approx(1003.988421, abs=1e-6)  # A's second win, against c at 1000 - gain
    assert sum(ratings.values()) == pytest.approx(3000, abs=1e-9)  # Elo is zero-sum


def test_elo_takes_order_into_account_and_options():
    forward = elo(SMALL)
    backward = elo(SMALL[::-1])
    assert forward != backward
    for model, value in reference_elo(SMALL[::-1]).items():
        assert backward[model] == pytest.approx(value, abs=1e-9)
    for model, value in reference_elo(SMALL, k=32, scale=173, base=math.e, initial=1500).items():
        assert elo(SMALL, k=32, scale=173, base=math.e, initial=1500)[model] == pytest.approx(value, abs=1e-9)
    # Counts from collapse keep the order; resampled counts cannot give online Elo.
    assert elo(collapse(SMALL)) == forward
    counts = collapse(SMALL)
    unordered = Counts(counts.models, counts.a_idx, counts.b_idx, counts.outcome, counts.count)
    with pytest.raises(RatingError, match="needs the battles in their original order"):
        elo(unordered)


def test_elo_is_stable_for_huge_rating_gaps():
    ratings = elo([("a", "b", "model_a")] * 3, k=1e7)  # 10 ** (gap / 400) would overflow a float
    assert all(math.isfinite(value) for value in ratings.values())


# ---------------------------------------------------------------------------------------------------
# Bradley-Terry


def reference_bt(battles, steps=100_000):
    """Independent fit: gradient ascent, directly in Elo points, on the likelihood of every single battle
    (not collapsed), P(A wins) = 1 / (1 + 10 ** ((R_B - R_A) / 400)), ratings re-centred on 1000."""
    models = sorted({m for a, b, _ in battles for m in (a, b)})
    rating = {m: 1000.0 for m in models}
    for _ in range(steps):
        gradient = {m: 0.0 for m in models}
        for a, b, winner in battles:
            p = 1 / (1 + 10 ** ((rating[b] - rating[a]) / 400))
            gradient[a] += SCORE[winner] - p
            gradient[b] -= SCORE[winner] - p
        for m in models:
            rating[m] += 100 * gradient[m]
        mean = sum(rating.values()) / len(models)
        rating = {m: r - mean + 1000 for m, r in rating.items()}
        if max(abs(g) for g in gradient.values()) < 1e-12:
            return rating
    raise AssertionError("reference fit did not converge")


def test_bradley_terry_matches_an_independent_fit():
    expected = reference_bt(SMALL)
    exact = bradley_terry(SMALL, ridge=0)  # the plain MLE
    default = bradley_terry(SMALL)  # with the tiny ridge
    for model, value in expected.items():
        assert exact[model] == pytest.approx(value, abs=1e-8)
        assert default[model] == pytest.approx(value, abs=1e-2)
    assert exact["turkish-llava"] == pytest.approx(1109.386940, abs=1e-6)


def test_bradley_terry_same_on_collapsed_shuffled_and_repeated_battles():
    reference = bradley_terry(SMALL)
    shuffled = [SMALL[i] for i in np.random.default_rng(1).permutation(len(SMALL))]
    for same in (bradley_terry(collapse(SMALL)), bradley_terry(as_dicts(shuffled)), bradley_terry(SMALL * 7, ridge=1e-6)):
        for model, value in reference.items():
            assert same[model] == pytest.approx(value, abs=1e-6)


def test_bradley_terry_scale_base_initial_and_anchor():
    three_of_four = [("x", "y", "model_a")] * 2 + [("y", "x", "model_b"), ("y", "x", "model_a")]
    ratings = bradley_terry(three_of_four)
    assert ratings["x"] - ratings["y"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert ratings["x"] + ratings["y"] == pytest.approx(2000, abs=1e-9)  # mean rating = initial
    # Ties are half a win for each side: 3 wins, 1 loss and 2 ties is a 4:2 score.
    with_ties = three_of_four + [("x", "y", "tie"), ("y", "x", "tie (bothbad)")]
    ratings = bradley_terry(with_ties, ridge=0)
    assert ratings["x"] - ratings["y"] == pytest.approx(400 * math.log10(2), abs=1e-9)
    ratings = bradley_terry(three_of_four, scale=1, base=math.e, initial=1500, ridge=0)
    assert ratings["x"] - ratings["y"] == pytest.approx(math.log(3), abs=1e-12)
    assert (ratings["x"] + ratings["y"]) / 2 == pytest.approx(1500, abs=1e-9)
    ratings = bradley_terry(three_of_four, anchor="y", anchor_rating=800, ridge=0)
    assert ratings == pytest.approx({"x": 800 + 400 * math.log10(3), "y": 800}, abs=1e-9)
    with pytest.raises(RatingError, match="anchor model 'z' has no battles"):
        bradley_terry(three_of_four, anchor="z")


def test_bradley_terry_stays_finite_when_a_model_never_loses():
    ratings = bradley_terry([("x", "y", "model_a")] * 4 + [("y", "z", "tie")] * 2)
    assert all(math.isfinite(value) for value in ratings.values())
    # x's rating is large but finite; y and z stay close (y's losses to x pull it down a hair).
    assert ratings["x"] - ratings["z"] > 1000
    assert ratings["z"] - ratings["y"] == pytest.approx(0, abs=0.1)
    assert sum(ratings.values()) / 3 == pytest.approx(1000, abs=1e-9)
    with pytest.raises(RatingError, match="^with ridge=0 the Bradley-Terry ratings are infinite"):
        bradley_terry([("x", "y", "model_a")] * 4 + [("y", "z", "tie")] * 2, ridge=0)


def test_win_fraction_matrix_counts_both_sides_and_ties_as_half():
    models, matrix = win_fraction_matrix([("a", "b", "model_a"), ("b", "a", "model_a"), ("a", "b", "tie"),
                                          ("b", "a", "model_b"), ("c", "a", "model_b")])
    assert models == ["a", "b", "c"]
    # a vs b: a won 2 (one as A, one as B), lost 1, tied 1 -> 2.5 of 4
    expected = np.array([[np.nan, 2.5 / 4, 1.0],
                         [1.5 / 4, np.nan, np.nan],
                         [0.0, np.nan, np.nan]])
    np.testing.assert_array_equal(matrix, expected)


# ---------------------------------------------------------------------------------------------------
# bootstrap and ranks

TRUE = {"alpha": 1150.0, "beta": 1050.0, "gamma": 950.0, "delta": 850.0}  # mean 1000, like the fit


def simulate(n, seed, tie_rate=0.1):
    """n battles between random pairs, drawn so that A's expected score (a tie counting half) is the
    Elo/BT win probability of the TRUE ratings: ties at tie_rate, the rest split accordingly."""
    rng = np.random.default_rng(seed)
    names = np.array(list(TRUE))
    strength = np.array(list(TRUE.values()))
    a = rng.integers(0, len(names), n)
    b = (a + rng.integers(1, len(names), n)) % len(names)
    p = 1 / (1 + 10 ** ((strength[b] - strength[a]) / 400))
    a_wins = rng.random(n) < (p - tie_rate / 2) / (1 - tie_rate)
    winner = np.where(rng.random(n) < tie_rate, "tie", np.where(a_wins, "model_a", "model_b"))
    return names[a], names[b], winner


def test_bootstrap_intervals_cover_the_true_ratings_and_shrink_with_more_battles():
    small = bootstrap(collapse_arrays(*simulate(3000, seed=0)), rounds=200, seed=0)
    large = bootstrap(collapse_arrays(*simulate(30000, seed=1)), rounds=200, seed=0)
    assert small.samples.shape == (200, 4)
    np.testing.assert_allclose(small.samples.mean(axis=1), 1000, atol=1e-9)  # every round centred the same way
    for result in (small, large):
        for model, (low, high) in result.intervals.items():
            assert low < TRUE[model] < high, (model, low, high)
    for model in TRUE:
        small_width = small.high[model] - small.low[model]
        large_width = large.high[model] - large.low[model]
        assert 15 < small_width < 60
        assert large_width < small_width / 2  # ~ 1 / sqrt(10) expected
        assert small.low[model] < small.median[model] < small.high[model]


def test_bootstrap_on_battles_equals_bootstrap_on_counts_and_is_seeded():
    battles = SMALL * 3
    a = bootstrap(battles, rounds=30, seed=5)
    b = bootstrap(collapse(battles), rounds=30, seed=5)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, bootstrap(battles, rounds=30, seed=6).samples)
    assert a.low == {m: float(np.percentile(a.samples[:, i], 2.5)) for i, m in enumerate(a.models)}
    online = bootstrap(battles, rounds=10, seed=0, method="elo", k=8)
    assert online.samples.shape == (10, 4)
    np.testing.assert_allclose(online.samples.sum(axis=1), 4000, atol=1e-9)  # Elo is zero-sum
    with pytest.raises(RatingError, match="unknown option"):
        bootstrap(battles, rounds=2, k=8)  # k is an Elo option, not a Bradley-Terry one
    with pytest.raises(RatingError, match="rounds must be at least 1"):
        bootstrap(battles, rounds=0)


def test_arena_ranks_share_ranks_when_intervals_overlap():
    ranks = arena_ranks({
        "a": (10.0, 20.0),
        "b": (15.0, 25.0),  # overlaps a and d
        "c": (0.0, 9.0),  # below a, b and d
        "d": (21.0, 30.0),  # above a
        "e": (30.0, 40.0),  # touches d's upper bound: not strictly above, so d keeps rank 1
    })
    assert ranks == {"a": 3, "b": 2, "c": 5, "d": 1, "e": 1}


# ---------------------------------------------------------------------------------------------------
# leaderboard


def test_leaderboard_rows():
    rows = leaderboard(as_dicts(SMALL * 3), rounds=20, seed=0)
    assert [row.model for row in rows] == ["turkish-llava", "llava-1.5", "cosmos-mistral", "paligemma"]
    top = rows[0]
    assert (top.votes, top.wins, top.ties, top.losses) == (24, 15, 3, 6)
    assert top.rating == pytest.approx(bradley_terry(SMALL)["turkish-llava"], abs=1e-9)
    assert top.elo == pytest.approx(elo(SMALL * 3)["turkish-llava"], abs=1e-12)
    assert sum(row.votes for row in rows) == 2 * len(SMALL) * 3
    assert [row.rank for row in rows] == [1, 1, 1, 2]  # paligemma's interval lies wholly below turkish-llava's


def test_format_table_escapes_pipes():
    rows = leaderboard([("a|b", "c", "model_a"), ("c", "a|b", "tie")], rounds=5)
    table = format_table(rows)
    assert table.splitlines()[0] == "| rank | model | rating | 95% CI | elo | votes | W/T/L |"
    assert "| a\\|b |" in table


def test_million_battles_in_seconds(capsys):
    rng = np.random.default_rng(0)
    names = np.array([f"model-{i}" for i in range(8)])
    true = np.linspace(900, 1100, 8)
    n = 1_000_000
    a = rng.integers(0, 8, n)
    b = (a + rng.integers(1, 8, n)) % 8
    a_wins = rng.random(n) < 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
    winner = np.where(a_wins, "model_a", "model_b")
    start = time.perf_counter()
    counts = collapse_arrays(names[a], names[b], winner)
    collapsed = time.perf_counter()
    rows = leaderboard(counts, rounds=100, seed=0)
    done = time.perf_counter()
    with capsys.disabled():
        print(f"\n1,000,000 battles: collapse_arrays {collapsed - start:.2f} s, leaderboard with 100 bootstrap "
              f"rounds {done - collapsed:.2f} s, total {done - start:.2f} s")
    assert done - start < 10
    assert sum(row.votes for row in rows) == 2 * n
    for row in rows:
        assert row.rating == pytest.approx(true[int(row.model[-1])], abs=5)
        assert row.ci_low < row.rating < row.ci_high


# ---------------------------------------------------------------------------------------------------
# CLI


def parse(*argv):
    parser = argparse.ArgumentParser(prog="python -m cosmos_llava")
    add_leaderboard_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["leaderboard", *argv])


def write_jsonl(path, battles):
    path.write_text("".join(json.dumps(b) + "\n" for b in as_dicts(battles)), encoding="utf-8")
    return path


EXPECTED_TABLE = """\
| rank | model | rating | 95% CI | elo | votes | W/T/L |
| ---: | :--- | ---: | :---: | ---: | ---: | :---: |
| 1 | turkish-llava | 1109.4 | [1029.7, 1258.3] | 1016.5 | 24 | 15/3/6 |
| 1 | llava-1.5 | 1012.1 | [899.1, 1134.4] | 1000.5 | 21 | 9/3/9 |
| 1 | cosmos-mistral | 971.4 | [866.0, 1068.1] | 994.2 | 21 | 6/6/9 |
| 2 | paligemma | 907.2 | [802.1, 999.7] | 988.8 | 18 | 3/6/9 |
"""


def test_cli_markdown_table(tmp_path, capsys):
    path = write_jsonl(tmp_path / "battles.jsonl", SMALL * 3)
    assert run_leaderboard(parse("--battles", str(path), "--bootstrap", "20", "--seed", "0")) == 0
    assert capsys.readouterr().out == EXPECTED_TABLE


def test_cli_json(tmp_path, capsys):
    path = write_jsonl(tmp_path / "battles.jsonl", SMALL * 3)
    assert run_leaderboard(parse("--battles", str(path), "--bootstrap", "20", "--json")) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {"model": "turkish-llava", "rank": 1, "rating": 1109.39, "ci_low": 1029.68,
                       "ci_high": 1258.32, "elo": 1016.46, "votes": 24, "wins": 15, "ties": 3, "losses": 6}
    assert [(row["model"], row["rank"]) for row in rows] == [
        ("turkish-llava", 1), ("llava-1.5", 1), ("cosmos-mistral", 1), ("paligemma", 2)]


def test_cli_reads_the_arena_database(tmp_path, capsys, monkeypatch):
    """--db goes through ArenaStore(path).rating_battles(mode="blind"); a stand-in store serves it here."""
    db = tmp_path / "arena.sqlite"
    db.write_bytes(b"")
    asked = []

    class StandInStore:
        def __init__(self, path):
            asked.append(path)

        def rating_battles(self, mode):
            asked.append(mode)
            return as_dicts(SMALL * 3)

    monkeypatch.setitem(sys.modules, "cosmos_llava.arena_store", types.SimpleNamespace(ArenaStore=StandInStore))
    assert run_leaderboard(parse("--db", str(db), "--bootstrap", "20")) == 0
    assert asked == [str(db), "blind"]
    assert capsys.readouterr().out == EXPECTED_TABLE


def test_cli_reads_a_real_arena_database(tmp_path, capsys):
    """The same through the real store: only blind votes count, in vote order."""
    arena_store = pytest.importorskip("cosmos_llava.arena_store")
    db = tmp_path / "arena.sqlite"
    voter = arena_store.voter_id("session", "salt")
    with arena_store.ArenaStore(db) as store:
        for mode, battles in (("blind", SMALL * 3), ("named", [("paligemma", "turkish-llava", "model_a")] * 5)):
            for model_a, model_b, winner in battles:
                battle = store.new_battle(model_a, model_b, voter, mode=mode)
                store.finish_turn(battle, store.add_turn(battle, "Görselde ne var?"), "bir kedi", "bir köpek")
                assert store.vote(battle, winner, voter)
    assert run_leaderboard(parse("--db", str(db), "--bootstrap", "20")) == 0
    assert capsys.readouterr().out == EXPECTED_TABLE


@pytest.mark.parametrize("line, message", [
    ('{"model_a": "a", "model_b": "b" "winner": "tie"}', "line 2: not valid JSON (Expecting ',' delimiter)"),
    ('{"model_a": "a", "model_b": "b", "winner": "draw"}',
     "line 2: unknown winner 'draw' (expected one of: model_a, model_b, tie, tie (bothbad))"),
    ('["a", "b", "tie"]', "line 2: expected a JSON object with model_a, model_b and winner"),
    ('{"model_a": "a", "winner": "tie"}', "line 2: missing 'model_b'"),
])
def test_cli_bad_line_is_one_line_error(tmp_path, capsys, line, message):
    path = tmp_path / "battles.jsonl"
    path.write_text('{"model_a": "a", "model_b": "b", "winner": "tie"}\n' + line + "\n", encoding="utf-8")
    args = parse("--battles", str(path))
    assert run_command(lambda: run_leaderboard(args)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {path} {message}\n"


def test_cli_errors_and_usage(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    args = parse("--battles", str(missing))
    assert run_command(lambda: run_leaderboard(args)) == 1
    assert capsys.readouterr().err == f"error: --battles {missing}: no such file\n"
    args = parse("--db", str(tmp_path / "missing.sqlite"))
    assert run_command(lambda: run_leaderboard(args)) == 1
    assert capsys.readouterr().err == f"error: --db {tmp_path / 'missing.sqlite'}: no such file\n"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    args = parse("--battles", str(empty))
    assert run_command(lambda: run_leaderboard(args)) == 1
    assert capsys.readouterr().err == f"error: {empty}: no battles\n"
    args = parse("--battles", str(empty), "--bootstrap", "0")
    assert run_command(lambda: run_leaderboard(args)) == 1
    assert capsys.readouterr().err == "error: --bootstrap must be at least 1, got 0\n"
    for argv in ([], ["--db", "x", "--battles", "y"]):  # exactly one source: argparse usage error, exit 2
        with pytest.raises(SystemExit) as info:
            parse(*argv)
        assert info.value.code == 2
