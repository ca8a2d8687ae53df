"""Human ratings of CoTs, as a results DB keeps them: the paper's user study (imported with its outputs) or a ratings
CSV a user gives. A rating belongs to a `model_label`, which reports match to a condition by alias (a transfer
source's or an ensemble's); `cotbridge.analysis.report` correlates their means with consistency."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from cotbridge.errors import ConfigError
from cotbridge.study.files import read_user_text

# What a ratings CSV must have, and what it may have (the paper's user study has them all, the item inside
# `original_col`, e.g. "orange-model-185 - Clarity of Steps: ...").
REQUIRED_COLUMNS = ("model_label", "value")
OPTIONAL_COLUMNS = ("criterion", "participant_id", "item", "original_col", "model")
DEFAULT_CRITERION = "rating"


@dataclass(frozen=True, slots=True)
class StoredRating:
    """One rating: who gave it (participant_id, "" when unknown), to which item and shown CoT (model: as shown, e.g.
    "orange-model"), by which criterion ("rating" when the CSV has none), its value and the CoT's `model_label`."""

    participant_id: str
    item: str
    model: str
    criterion: str
    value: float
    model_label: str


def _item(record: dict[str, str | None]) -> str:
    if record.get("item"):
        return str(record["item"]).strip()
    # The user study's survey column: "<colour>-model-<item> - <question>" or "best-overall-<item> - ...".
    head = (record.get("original_col") or "").split(" - ", 1)[0].strip()
    return head.rpartition("-")[2]


def parse_ratings(text: str, source: str = "<ratings>") -> list[StoredRating]:
    """Ratings from a CSV's text: columns model_label and value, optionally criterion, participant_id, item (or the
    user study's original_col) and model. Rows with an empty value (a skipped question) are left out. ConfigError
    naming the file, the line and the fix for a missing column or a value that is not a number."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip() for c in reader.fieldnames or ()]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ConfigError(
            f"{source}: a ratings CSV needs the columns {', '.join(REQUIRED_COLUMNS)} (criterion optional); "
            f"{', '.join(missing)} missing (it has: {', '.join(columns) or 'no header'})"
        )
    ratings = []
    for line, record in enumerate(reader, start=2):
        record = {(k or "").strip(): v for k, v in record.items()}
        raw = (record.get("value") or "").strip()
        label = (record.get("model_label") or "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{source}: line {line}: value {raw!r} is not a number; ratings are numbers") from None
        if not label:
            raise ConfigError(f"{source}: line {line}: no model_label; name the CoT's source by its alias")
        ratings.append(
            StoredRating(
                participant_id=(record.get("participant_id") or "").strip(),
                item=_item(record),
                model=(record.get("model") or "").strip(),
                criterion=(record.get("criterion") or "").strip() or DEFAULT_CRITERION,
                value=value,
                model_label=label,
            )
        )
    return ratings


def read_ratings(path: str | Path) -> list[StoredRating]:
    """Ratings from a CSV file (see `parse_ratings`); ConfigError when it is missing or not UTF-8 text."""
    return parse_ratings(read_user_text(path, "ratings CSV"), str(path))
