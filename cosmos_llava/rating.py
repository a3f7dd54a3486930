"""Ratings from blind pairwise human votes, the Chatbot Arena way (numpy only).

A *battle* is one vote between two anonymous answers:
`{"model_a": str, "model_b": str, "winner": "model_a" | "model_b" | "tie" | "tie (bothbad)"}`
(Chatbot Arena's public JSON-lines format; other keys are ignored), or in Python the tuple
`(model_a, model_b, winner)`.

Everything is computed on `Counts`: identical (model_a, model_b, outcome) rows collapsed into one row
with a count, so a million votes between ten models are a few hundred rows.

Conventions
-----------
* Outcome of a row, from model A's side: 1 = A wins, 0 = B wins, 0.5 = a tie (both kinds of tie).
* Every rating is on the Elo scale: a difference of `scale` points means `base` times the strength,
  i.e. P(A beats B) = 1 / (1 + base ** ((R_B - R_A) / scale)). Defaults: scale 400, base 10.
* `elo`: online Elo, order-dependent, all models start at `initial`; a tie scores 0.5 to each side.
* `bradley_terry`: the maximum-likelihood fit of that same win probability to all votes at once
  (order-free), a tie counting as half a win for each side. Ratings are shifted so their mean is
  `initial`, or so that `anchor` has `anchor_rating` (Chatbot Arena anchors a reference model).
  A tiny L2 penalty (`ridge`, relative to the number of votes) keeps the fit finite when a model never
  loses or never wins (the plain MLE is then infinite) and fixes the free additive constant.
* `bootstrap`: 95% intervals from resampling the votes with replacement.
* `leaderboard` ranks as Chatbot Arena does: rank = 1 + the number of models whose interval lies
  entirely above this model's interval, so models with overlapping intervals share a rank.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Iterable

import numpy as np

from .errors import CosmosLlavaError

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
# Outcome per winner value, from model A's side.
_OUTCOME = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
# The three distinct outcomes, coded 0..2 for collapsing.
_OUTCOME_VALUES = np.array([0.0, 0.5, 1.0])
_OUTCOME_CODE = {"model_a": 2, "model_b": 0, "tie": 1, "tie (bothbad)": 1}


class RatingError(CosmosLlavaError):
    """Battles that cannot be rated (malformed rows, unknown winner, nothing to rate)."""


# ---------------------------------------------------------------------------------------------------
# Collapsing battles into counts


@dataclass(frozen=True, eq=False)
class Counts:
    """Battles collapsed into distinct (model_a, model_b, outcome) rows with counts.

    `models` are sorted; `a_idx` / `b_idx` index into them; `outcome` is 1 (A won), 0 (B won) or 0.5
    (tie); `count` is how many battles each row stands for. `order`, when known, is the row of each
    original battle in input order (what online Elo needs); resampled counts have none.
    """

    models: list[str]
    a_idx: np.ndarray
    b_idx: np.ndarray
    outcome: np.ndarray
    count: np.ndarray
    order: np.ndarray | None = None

    @property
    def n_battles(self) -> int:
        return int(self.count.sum())


def collapse(battles) -> Counts:
    """Collapse battles (dicts or (model_a, model_b, winner) tuples, in order) into `Counts`.

    Raises RatingError naming the battle (1-based) for a malformed row, an unknown winner or a model
    against itself, and "no battles" when there are none. `Counts` pass through unchanged.
    """
    if isinstance(battles, Counts):
        return battles
    index: dict[str, int] = {}
    a_list: list[int] = []
    b_list: list[int] = []
    codes: list[int] = []
    for number, battle in enumerate(battles, start=1):
        model_a, model_b, winner = _check_battle(battle, f"battle {number}")
        a_list.append(index.setdefault(model_a, len(index)))
        b_list.append(index.setdefault(model_b, len(index)))
        codes.append(_OUTCOME_CODE[winner])
    if not codes:
        raise RatingError("no battles")
    # Renumber models in sorted order so results do not depend on who appeared first.
    names = sorted(index)
    rank = np.empty(len(names), dtype=np.int64)
    rank[[index[name] for name in names]] = np.arange(len(names))
    a = rank[np.asarray(a_list, dtype=np.int64)]
    b = rank[np.asarray(b_list, dtype=np.int64)]
    return _collapse_indices(names, a, b, np.asarray(codes, dtype=np.int64))


def collapse_arrays(model_a, model_b, winner) -> Counts:
    """`collapse` for column arrays (e.g. a million votes built with numpy): names of model A, names
    of model B and winner values, one element per battle, in order. Vectorised; same result as
    `collapse` on the equivalent rows."""
    model_a, model_b, winner = np.asarray(model_a), np.asarray(model_b), np.asarray(winner)
    if not (model_a.ndim == model_b.ndim == winner.ndim == 1 and len(model_a) == len(model_b) == len(winner)):
        raise RatingError("model_a, model_b and winner must be 1-D arrays of the same length")
    if len(winner) == 0:
        raise RatingError("no battles")
    # A set finds the few distinct values fast; a binary search then codes the many elements
    # (np.unique would sort millions of strings).
    names = sorted(set(model_a.tolist()) | set(model_b.tolist()), key=str)
    if not all(isinstance(name, str) and name for name in names):
        raise RatingError("model names must be non-empty strings")
    winners = winner.tolist()
    if not set(winners) <= _OUTCOME_CODE.keys():
        first = next(i for i, value in enumerate(winners) if value not in _OUTCOME_CODE)
        raise RatingError(f"battle {first + 1}: {_bad_winner(winners[first])}")
    outcome_names = sorted(_OUTCOME_CODE)
    code_of_name = np.array([_OUTCOME_CODE[name] for name in outcome_names], dtype=np.int64)
    code = code_of_name[np.searchsorted(outcome_names, winner.astype(str))]
    a = np.searchsorted(names, model_a.astype(str)).astype(np.int64)
    b = np.searchsorted(names, model_b.astype(str)).astype(np.int64)
    same = np.flatnonzero(a == b)
    if len(same):
        raise RatingError(f"battle {same[0] + 1}: model '{names[a[same[0]]]}' against itself")
    return _collapse_indices(names, a, b, code)


def _collapse_indices(models: list[str], a: np.ndarray, b: np.ndarray, code: np.ndarray) -> Counts:
    m = len(models)
    keys, order, count = np.unique((a * m + b) * 3 + code, return_inverse=True, return_counts=True)
    pair, row_code = np.divmod(keys, 3)
    row_a, row_b = np.divmod(pair, m)
    return Counts(models, row_a, row_b, _OUTCOME_VALUES[row_code], count.astype(np.int64), order.reshape(-1))


def _check_battle(battle, where: str) -> tuple[str, str, str]:
    """(model_a, model_b, winner) of one battle, or a one-line RatingError saying what is wrong."""
    if isinstance(battle, dict):
        for key in ("model_a", "model_b", "winner"):
            if key not in battle:
                raise RatingError(f"{where}: missing '{key}'")
        model_a, model_b, winner = battle["model_a"], battle["model_b"], battle["winner"]
    elif isinstance(battle, (tuple, list)) and len(battle) == 3:
        model_a, model_b, winner = battle
    else:
        raise RatingError(f"{where}: expected {{\"model_a\", \"model_b\", \"winner\"}} or a "
                          "(model_a, model_b, winner) tuple")
    for key, name in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(name, str) or not name:
            raise RatingError(f"{where}: {key} must be a non-empty string, got {name!r}")
    if not isinstance(winner, str) or winner not in _OUTCOME_CODE:
        raise RatingError(f"{where}: {_bad_winner(winner)}")
    if model_a == model_b:
        raise RatingError(f"{where}: model '{model_a}' against itself")
    return model_a, model_b, winner


def _bad_winner(value) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    return f"unknown winner {value!r} (expected one of: {', '.join(WINNERS)})"


# ---------------------------------------------------------------------------------------------------
# Online Elo


def elo(battles, k: float = 4, scale: float = 400, base: float = 10, initial: float = 1000) -> dict[str, float]:
    """Online Elo over the battles in the given order (Chatbot Arena's `compute_online_elo`).

    Every model starts at `initial`; after each battle A gains k * (S_A - E_A) and B loses as much,
    with S_A = 1, 0.5 (tie) or 0 and E_A = 1 / (1 + base ** ((R_B - R_A) / scale)). Takes battles or
    `Counts` that still carry their input order (from `collapse` / `collapse_arrays`).
    """
    counts = collapse(battles)
    if counts.order is None:
        raise RatingError("online Elo needs the battles in their original order; these counts have none")
    ratings = _online_elo(counts, counts.order, k, scale, base, initial)
    return dict(zip(counts.models, ratings))


def _online_elo(counts: Counts, rows: np.ndarray, k: float, scale: float, base: float, initial: float) -> list[float]:
    """Elo over the battles `rows` (row indices of `counts`, in playing order)."""
    # Sequential by nature: a plain Python loop over Python floats is the fastest way without a compiler.
    a_seq = counts.a_idx[rows].tolist()
    b_seq = counts.b_idx[rows].tolist()
    s_seq = counts.outcome[rows].tolist()
    ratings = [float(initial)] * len(counts.models)
    nats_per_point = math.log(base) / scale
    exp = math.exp
    for a, b, s in zip(a_seq, b_seq, s_seq):
        z = (ratings[a] - ratings[b]) * nats_per_point
        # Expected score of A, the logistic of z, in the form whose exp() cannot overflow.
        if z >= 0:
            expected = 1.0 / (1.0 + exp(-z))
        else:
            e = exp(z)
            expected = e / (1.0 + e)
        delta = k * (s - expected)
        ratings[a] += delta
        ratings[b] -= delta
    return ratings


# ---------------------------------------------------------------------------------------------------
# Bradley-Terry (maximum likelihood)


def bradley_terry(counts, scale: float = 400, base: float = 10, initial: float = 1000, *,
                  anchor: str | None = None, anchor_rating: float = 1000, ridge: float = 1e-6) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale.

    Model: P(A beats B) = sigmoid(theta_A - theta_B) with theta the natural-log strength. Each row adds
    count * [y log p + (1 - y) log(1 - p)] to the log-likelihood, y = 1 / 0 / 0.5 (a tie is half a win for
    each side). We maximise it minus (ridge * n_battles / 2) * sum(theta^2) by Newton's method. The
    penalty is negligible with data (a relative 1e-6) but keeps theta finite for a model that never loses
    or never wins, and makes the optimum unique with mean(theta) = 0 (the likelihood only sees
    differences). Ratings: initial + scale * theta / ln(base), so the mean rating is `initial`; with
    `anchor`, all are shifted so that model has `anchor_rating` instead.

    Models that were never compared through any chain of battles are not on a common scale: each such
    group is centred on its own.
    """
    counts = collapse(counts)
    theta = _fit_bt(counts, counts.count, ridge)
    ratings = _to_elo_scale(theta, counts.models, scale, base, initial, anchor, anchor_rating)
    return dict(zip(counts.models, ratings.tolist()))


def _fit_bt(counts: Counts, weight: np.ndarray, ridge: float, start: np.ndarray | None = None,
            tol: float = 1e-9, max_iter: int = 100) -> np.ndarray:
    """Penalised-MLE log-strengths (mean 0) for `counts` rows weighted by `weight`."""
    m = len(counts.models)
    a, b, y = counts.a_idx, counts.b_idx, counts.outcome
    w = np.asarray(weight, dtype=np.float64)
    if ridge < 0:
        raise RatingError(f"ridge must be at least 0, got {ridge}")
    if ridge == 0 and not _mle_exists(counts, w):
        raise RatingError("with ridge=0 the Bradley-Terry ratings are infinite: some group of models never "
                          "won or tied against the rest; use ridge > 0")
    lam = ridge * max(float(w.sum()), 1.0)

    def objective(theta: np.ndarray) -> float:
        z = theta[a] - theta[b]
        # -log sigmoid(z) = logaddexp(0, -z): exact and overflow-free for any z.
        loss = y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z)
        return -float(w @ loss) - 0.5 * lam * float(theta @ theta)

    theta = np.zeros(m) if start is None else start - start.mean()
    value = objective(theta)
    pair = a * m + b
    for _ in range(max_iter):
        z = theta[a] - theta[b]
        p = _sigmoid(z)
        residual = w * (y - p)
        gradient = np.bincount(a, residual, m) - np.bincount(b, residual, m) - lam * theta
        # Minus the Hessian: the weighted Laplacian of the comparison graph plus lam * I.
        curvature = w * p * (1.0 - p)
        off = np.bincount(pair, curvature, m * m).reshape(m, m)
        off += off.T
        hessian = np.diag(off.sum(axis=1) + lam) - off
        # The Laplacian is singular along (1, ..., 1), the direction the likelihood cannot see. theta
        # and the gradient have mean 0, so adding a constant matrix only fixes that direction (step mean
        # 0) and lets ridge=0 work too; scaled like the data to keep the system well conditioned.
        hessian += max(np.trace(hessian), 1e-300) / m**2
        step = np.linalg.solve(hessian, gradient)
        # Backtracking keeps every step uphill: the objective is concave, but a full Newton step from far
        # away (a model that never loses) can overshoot.
        t = 1.0
        while True:
            candidate = theta + t * step
            new_value = objective(candidate)
            if new_value >= value or t < 1e-10:
                break
            t *= 0.5
        if new_value < value:  # no uphill step left: at the optimum to float precision
            break
        theta, value = candidate, new_value
        if np.max(np.abs(t * step)) < tol:
            break
    else:
        raise RatingError(f"Bradley-Terry did not converge in {max_iter} Newton steps")
    return theta - theta.mean()  # mean 0 up to float residue; make it exact


def _mle_exists(counts: Counts, weight: np.ndarray) -> bool:
    """Whether the unpenalised MLE is finite (Zermelo's condition): in the graph "i won or tied against
    j at least once", every model reaches every other. Otherwise some group of models never scored
    against the rest, and the likelihood keeps growing as that gap widens."""
    m = len(counts.models)
    played = weight > 0
    a, b, y = counts.a_idx[played], counts.b_idx[played], counts.outcome[played]
    scored = np.zeros((m, m), dtype=bool)
    scored[a[y > 0], b[y > 0]] = True  # A won or tied
    scored[b[y < 1], a[y < 1]] = True  # B won or tied
    # Strongly connected iff model 0 reaches everyone along the edges and against them.
    return _reaches_all(scored) and _reaches_all(scored.T)


def _reaches_all(edges: np.ndarray) -> bool:
    reached = np.zeros(len(edges), dtype=bool)
    reached[0] = True
    while True:
        grown = reached | edges[reached].any(axis=0)
        if grown.sum() == reached.sum():
            return bool(reached.all())
        reached = grown


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-logaddexp(0, -z)) = 1 / (1 + exp(-z)) without overflow for large |z|.
    return np.exp(-np.logaddexp(0.0, -z))


def _to_elo_scale(theta: np.ndarray, models: list[str], scale: float, base: float, initial: float,
                  anchor: str | None, anchor_rating: float) -> np.ndarray:
    """Log-strengths (natural log, any offset) to ratings; `theta` may be [models] or [rounds, models]."""
    points = scale * theta / math.log(base)
    if anchor is None:
        return initial + points - points.mean(axis=-1, keepdims=True)
    if anchor not in models:
        raise RatingError(f"anchor model '{anchor}' has no battles")
    i = models.index(anchor)
    return anchor_rating + points - points[..., i:i + 1]


# ---------------------------------------------------------------------------------------------------
# Bootstrap confidence intervals


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Ratings of every bootstrap round: `samples[round, i]` is the rating of `models[i]`."""

    models: list[str]
    samples: np.ndarray

    def _percentile(self, q: float) -> dict[str, float]:
        return dict(zip(self.models, np.percentile(self.samples, q, axis=0).tolist()))

    @property
    def low(self) -> dict[str, float]:
        """2.5th percentile per model."""
        return self._percentile(2.5)

    @property
    def high(self) -> dict[str, float]:
        """97.5th percentile per model."""
        return self._percentile(97.5)

    @property
    def median(self) -> dict[str, float]:
        return self._percentile(50)

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        """The 95% interval (2.5th, 97.5th percentile) per model."""
        low, high = self.low, self.high
        return {model: (low[model], high[model]) for model in self.models}


def bootstrap(counts_or_battles, rounds: int = 100, seed: int = 0, method: str = "bt", **options) -> BootstrapResult:
    """Bootstrap the ratings: each round resamples the N battles with replacement and re-rates.

    On counts, resampling N battles with replacement is exactly a multinomial draw of the count vector
    (N trials, probabilities count / N), which is what we draw. `method`: "bt" (Bradley-Terry; options
    as `bradley_terry`) or "elo" (online Elo over the resampled battles in shuffled order, as Chatbot
    Arena's notebook does; options as `elo`; one Python loop over N battles per round, so slow for
    millions). Intervals: `result.intervals`, `result.low` / `result.high` (2.5th / 97.5th percentiles).
    """
    counts = collapse(counts_or_battles)
    if rounds < 1:
        raise RatingError(f"bootstrap rounds must be at least 1, got {rounds}")
    if method not in ("bt", "elo"):
        raise RatingError(f"unknown bootstrap method '{method}' (expected bt or elo)")
    rng = np.random.default_rng(seed)
    n = counts.n_battles
    resampled = rng.multinomial(n, counts.count / n, size=rounds)
    if method == "bt":
        bt = dict(scale=400, base=10, initial=1000, anchor=None, anchor_rating=1000, ridge=1e-6)
        bt.update(_known_options(options, bt, "bradley_terry"))
        start = _fit_bt(counts, counts.count, bt["ridge"])  # warm start: rounds are near the full-data fit
        theta = np.stack([_fit_bt(counts, weight, bt["ridge"], start) for weight in resampled])
        samples = _to_elo_scale(theta, counts.models, bt["scale"], bt["base"], bt["initial"], bt["anchor"],
                                bt["anchor_rating"])
    else:
        online = dict(k=4, scale=400, base=10, initial=1000)
        online.update(_known_options(options, online, "elo"))
        rows = np.arange(len(counts.count))
        samples = np.array([_online_elo(counts, rng.permutation(np.repeat(rows, weight)), **online)
                            for weight in resampled])
    return BootstrapResult(list(counts.models), samples)


def _known_options(options: dict, defaults: dict, what: str) -> dict:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise RatingError(f"unknown option(s) for {what}: {', '.join(unknown)}")
    return options


# ---------------------------------------------------------------------------------------------------
# Leaderboard


@dataclass(frozen=True)
class LeaderboardRow:
    model: str
    rank: int
    rating: float  # Bradley-Terry on all battles, mean rating 1000
    ci_low: float  # 95% bootstrap interval of the Bradley-Terry rating
    ci_high: float
    elo: float  # online Elo (K=4) over the battles in input order
    votes: int  # battles involving the model
    wins: int
    ties: int
    losses: int


def arena_ranks(intervals: dict[str, tuple[float, float]]) -> dict[str, int]:
    """Chatbot Arena's rank: 1 + the number of models whose lower bound is strictly above this model's
    upper bound. Models whose intervals overlap therefore share a rank (and ranks may skip)."""
    lows = np.array([low for low, _ in intervals.values()])
    return {model: 1 + int((lows > high).sum()) for model, (_, high) in intervals.items()}


def leaderboard(battles, rounds: int = 100, seed: int = 0) -> list[LeaderboardRow]:
    """One row per model, sorted by Bradley-Terry rating (best first; ties by name): the rating (all
    battles, mean 1000), its 95% bootstrap interval (`rounds` resamples), the Arena rank from those
    intervals, online Elo (K=4) in input order, and the model's votes as wins / ties / losses. Takes
    battles, or `Counts` from `collapse` / `collapse_arrays` (which keep the order Elo needs)."""
    counts = collapse(battles)
    ratings = bradley_terry(counts)
    online = elo(counts)
    intervals = bootstrap(counts, rounds=rounds, seed=seed).intervals
    ranks = arena_ranks(intervals)
    wins, ties, losses = _records(counts)
    rows = [LeaderboardRow(model, ranks[model], ratings[model], intervals[model][0], intervals[model][1],
                           online[model], int(wins[i] + ties[i] + losses[i]), int(wins[i]), int(ties[i]),
                           int(losses[i]))
            for i, model in enumerate(counts.models)]
    return sorted(rows, key=lambda row: (-row.rating, row.model))


def _records(counts: Counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wins, ties and losses per model over all its battles (as A or as B)."""
    m = len(counts.models)
    c, y = counts.count, counts.outcome

    def per_model(as_a: np.ndarray, as_b: np.ndarray) -> np.ndarray:
        return (np.bincount(counts.a_idx, c * as_a, m) + np.bincount(counts.b_idx, c * as_b, m)).round().astype(np.int64)

    return per_model(y == 1, y == 0), per_model(y == 0.5, y == 0.5), per_model(y == 0, y == 1)


def win_fraction_matrix(counts) -> tuple[list[str], np.ndarray]:
    """`(models, M)`: M[i, j] is the share of the battles between models i and j (either side) that i
    won, a tie counting as half a win for each. NaN where the two never met (and on the diagonal)."""
    counts = collapse(counts)
    m = len(counts.models)
    a, b, c, y = counts.a_idx, counts.b_idx, counts.count, counts.outcome
    # Every row counts from both sides: for (A, B) with A's score y, and for (B, A) with B's score 1 - y.
    rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
    score = np.concatenate([c * y, c * (1.0 - y)])
    played = np.bincount(rows * m + cols, np.concatenate([c, c]).astype(np.float64), m * m).reshape(m, m)
    won = np.bincount(rows * m + cols, score, m * m).reshape(m, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.where(played > 0, won / played, np.nan)
    return list(counts.models), matrix


def format_table(rows: Iterable[LeaderboardRow]) -> str:
    """The leaderboard as a Markdown table (ratings to 0.1 point)."""
    lines = ["| rank | model | rating | 95% CI | elo | votes | W/T/L |",
             "| ---: | :--- | ---: | :---: | ---: | ---: | :---: |"]
    for row in rows:
        model = row.model.replace("|", "\\|")  # a '|' in a name would split the cell
        lines.append(f"| {row.rank} | {model} | {row.rating:.1f} | [{row.ci_low:.1f}, {row.ci_high:.1f}] | "
                     f"{row.elo:.1f} | {row.votes} | {row.wins}/{row.ties}/{row.losses} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Command line: python -m cosmos_llava leaderboard


def read_battles_jsonl(path: str | Path) -> list[dict]:
    """Battles from a JSON-lines file (blank lines skipped; a JSON list works too, read by the project's
    one record reader); a bad line raises a one-line RatingError naming the file and line number."""
    from .records import iter_records

    path = Path(path)
    if not path.is_file():
        raise RatingError(f"--battles {path}: no such file")
    battles = []
    for position, battle in iter_records(path):
        where = f"{path} {position}"
        if isinstance(battle, json.JSONDecodeError):
            raise RatingError(f"{where}: not valid JSON ({battle.msg})")
        if not isinstance(battle, dict):
            raise RatingError(f"{where}: expected a JSON object with model_a, model_b and winner")
        _check_battle(battle, where)
        battles.append(battle)
    if not battles:
        raise RatingError(f"{path}: no battles")
    return battles


def add_leaderboard_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("leaderboard", help="rate models from blind pairwise votes (Bradley-Terry, Elo)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", metavar="FILE", help="the arena's SQLite database (its blind votes)")
    source.add_argument("--battles", metavar="FILE.jsonl",
                        help='JSON lines: {"model_a", "model_b", "winner": model_a|model_b|tie|tie (bothbad)}')
    p.add_argument("--bootstrap", type=int, default=100, metavar="N", help="bootstrap rounds for the 95%% intervals")
    p.add_argument("--seed", type=int, default=0, help="seed for the bootstrap")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of a Markdown table")
    return p


def run_leaderboard(args: argparse.Namespace) -> int:
    if args.bootstrap < 1:
        raise RatingError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    if args.db is not None:
        if not Path(args.db).is_file():
            raise RatingError(f"--db {args.db}: no such file")
        from .arena_store import ArenaStore  # another module's job; imported only when asked for

        battles = ArenaStore(args.db).rating_battles(mode="blind")
        if not battles:
            raise RatingError(f"--db {args.db}: no blind votes yet")
    else:
        battles = read_battles_jsonl(args.battles)
    rows = leaderboard(battles, rounds=args.bootstrap, seed=args.seed)
    if args.json:
        # 0.01 point is far below any interval's width; rounding keeps the output stable across machines.
        print(json.dumps([_rounded(asdict(row)) for row in rows], ensure_ascii=False, indent=2))
    else:
        print(format_table(rows))
    return 0


def _rounded(row: dict) -> dict:
    return {key: round(value, 2) if isinstance(value, float) else value for key, value in row.items()}
