"""The human ratings of the paper's user study (Pal, Bau, Singh, arXiv 2601.11517: 15 participants rated 10 MedCalc
items, 4 CoTs each), read from its released one-rating-a-row CSV into `RatingRow`s for the pure metrics
(`cotbridge.analysis.metrics.mean_ratings`, `human_rating_correlation`). The rows are read by the one ratings reader
(`cotbridge.study.ratings`, which also takes a user's smaller CSV); this module insists on the study's columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from cotbridge.analysis.metrics import RatingRow
from cotbridge.errors import ConfigError
from cotbridge.study.ratings import StoredRating, parse_ratings

__all__ = ["load_ratings", "parse_ratings_csv", "rating_rows"]

_RATING_COLUMNS = ("participant_id", "original_col", "model", "criterion", "value", "model_label")


def rating_rows(ratings: Iterable[StoredRating]) -> list[RatingRow]:
    """Stored ratings as the metrics take them."""
    return [RatingRow(r.participant_id, r.item, r.model, r.criterion, r.value, r.model_label) for r in ratings]


def parse_ratings_csv(text: str) -> list[RatingRow]:
    """Parse the user study's one-rating-a-row CSV (`user_study/expanded_data_all_rows.csv`) from its text.

    Columns used: participant_id, original_col (the survey column, which names the item), model, criterion,
    value, model_label. A row with an empty value (a skipped question) is left out; a non-numeric value or a
    missing column raises ValueError.
    """
    header = [column.strip() for column in next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])]
    missing = [c for c in _RATING_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"ratings CSV lacks columns {missing}")
    try:
        return rating_rows(parse_ratings(text))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def load_ratings(path: str | Path) -> list[RatingRow]:
    """Read the user study's ratings CSV from a file (see `parse_ratings_csv`)."""
    return parse_ratings_csv(Path(path).read_text(encoding="utf-8"))
