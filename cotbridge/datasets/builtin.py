"""Built-in problem sets, defined in code: they run offline, for smoke tests and examples.

`builtin:arithmetic` is 20 short word problems with exact integer answers (checked as integers).
"""

from __future__ import annotations

import functools

from cotbridge.datasets.answers import check_typed
from cotbridge.datasets.jsonl import question_prompt
from cotbridge.errors import ConfigError
from cotbridge.records import Problem

ARITHMETIC_SYSTEM_PROMPT = (
    "Solve the word problem. Reason step by step, then give the final answer alone on the last line, "
    "as a whole number in the form 'Answer: <number>'."
)

# (question, answer); the arithmetic is spelled out in a comment where it takes more than one step.
ARITHMETIC: tuple[tuple[str, int], ...] = (
    ("A baker makes 24 muffins in the morning and 18 in the afternoon, then sells 29. How many are left?", 13),
    ("A train runs at 60 km/h for 3 hours, then at 80 km/h for 2 hours. How many kilometres does it cover?", 340),
    ("Tom has 5 boxes of 12 pencils and gives away 17 pencils. How many pencils does he have now?", 43),  # 60-17
    ("A rectangle is 14 cm long and 9 cm wide. What is its perimeter in centimetres?", 46),  # 2*(14+9)
    ("A school has 8 classes of 27 students each. How many students does it have?", 216),
    ("Maria saves 15 dollars a week. How many weeks does she need to save 180 dollars?", 12),
    ("Pens cost 3 dollars each. Ali buys 7 pens and pays with a 50-dollar note. How many dollars of change?", 29),
    ("96 apples are packed equally into 8 bags. How many apples go in each bag?", 12),
    ("A garden has 6 rows of 15 tulips, and 23 tulips are picked. How many tulips remain?", 67),  # 90-23
    ("It was -4 degrees in the morning and the temperature rose by 11 degrees by noon. How warm was it at noon?", 7),
    ("A book has 320 pages. Sam reads 45 pages a day for 6 days. How many pages are left?", 50),  # 320-270
    ("A farmer has 17 cows and 23 chickens. How many legs do the animals have altogether?", 114),  # 68+46
    ("A cinema has 25 rows of 32 seats and 647 seats are taken. How many seats are empty?", 153),  # 800-647
    ("Three friends split a bill of 87 dollars equally. How many dollars does each pay?", 29),
    ("A car uses 7 litres of fuel per 100 km. How many litres does it use on a 900 km trip?", 63),
    ("What is the sum of the whole numbers from 1 to 20?", 210),  # 20*21/2
    ("A 500-litre tank is filled at 35 litres a minute for 12 minutes. How many more litres fill it up?", 80),
    ("Lena is 4 times as old as her son, who is 9. How old will Lena be in 5 years?", 41),  # 36+5
    ("A box of 12 eggs costs 3 dollars. How many dollars do 60 eggs cost?", 15),  # 5 boxes
    ("A clock shows 9:40. How many minutes are there until 11:15?", 95),  # 20 + 60 + 15
)

BUILTIN_SETS = ("arithmetic",)


def arithmetic_problems() -> list[Problem]:
    """The built-in arithmetic word problems, ids "arithmetic-01" to "arithmetic-20"."""
    return [
        Problem(
            id=f"arithmetic-{number:02d}",
            dataset="arithmetic",
            prompt=question_prompt(question, ARITHMETIC_SYSTEM_PROMPT),
            gold=answer,
            checker=functools.partial(check_typed, gold=answer, answer_type="integer", tolerance=0.0),
            meta={"answer_type": "integer", "tolerance": 0.0},
        )
        for number, (question, answer) in enumerate(ARITHMETIC, start=1)
    ]


def load_builtin(name: str) -> list[Problem]:
    """A built-in problem set by name (see `BUILTIN_SETS`)."""
    if name == "arithmetic":
        return arithmetic_problems()
    raise ConfigError(
        f"builtin: no built-in set {name!r}; available: {', '.join(BUILTIN_SETS)} (e.g. builtin:arithmetic)"
    )
