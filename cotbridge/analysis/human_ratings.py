"""The human ratings of the paper's user study (Pal, Bau, Singh, arXiv 2601.11517: 15 participants rated 10 MedCalc
items, 4 CoTs each), read from its released one-rating-a-row CSV into `RatingRow`s for the pure metrics
(`cotbridge.analysis.metrics.mean_ratings`, `human_rating_correlation`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cotbridge.analysis.metrics import RatingRow

__all__ = ["load_ratings", "parse_ratings_csv"]

_RATING_COLUMNS = ("participant_id", "original_col", "model", "criterion", "value", "model_label")


def _item_of(original_col: str) -> str:
    # "orange-model-185 - Clarity of Steps: ..." and "best-overall-185 - <span ...>" both end their first part
    # with "-<item>".
    head = original_col.split(" - ", 1)[0].strip()
    prefix, sep, item = head.rpartition("-")
    if not sep or not prefix or not item:
        raise ValueError(f"cannot read the item from column {original_col!r}")
    return item


def parse_ratings_csv(text: str) -> list[RatingRow]:
    """Parse the user study's one-rating-a-row CSV (`user_study/expanded_data_all_rows.csv`) from its text.

    Columns used: participant_id, original_col (the survey column, which names the item), model, criterion,
    value, model_label. A row with an empty value (a skipped question) is left out; a non-numeric value or a
    missing column raises ValueError.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _RATING_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"ratings CSV lacks columns {missing}")
    rows: list[RatingRow] = []
    for line, rec in enumerate(reader, start=2):
        raw = (rec["value"] or "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"line {line}: value {raw!r} is not a number") from None
        rows.append(
            RatingRow(
                participant_id=rec["participant_id"].strip(),
                item=_item_of(rec["original_col"]),
                model=rec["model"].strip(),
                criterion=rec["criterion"].strip(),
                value=value,
                model_label=rec["model_label"].strip(),
            )
        )
    return rows


def load_ratings(path: str | Path) -> list[RatingRow]:
    """Read the user study's ratings CSV from a file (see `parse_ratings_csv`)."""
    return parse_ratings_csv(Path(path).read_text(encoding="utf-8"))
