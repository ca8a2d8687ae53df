"""Built-in problem sets, defined in code: they run offline, for smoke tests and examples.

`builtin:arithmetic` is 20 short word problems with exact integer answers (checked as integers).
`builtin:one-step` is 16 one-step word problems with small numbers, sized for the embedded 135M/270M models of
`cotbridge demo`: each prompt shows two worked examples as earlier turns of the chat (reasoning in the think-tags
channel on one line, then `Answer: N`), so that even a base model writes one short line of reasoning, answers in a
parseable form and stops.
"""

from __future__ import annotations

import functools

from cotbridge.datasets.answers import check_typed
from cotbridge.datasets.jsonl import question_prompt
from cotbridge.errors import ConfigError
from cotbridge.formats import FORMATS
from cotbridge.records import Message, Problem

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

ONE_STEP_SYSTEM_PROMPT = (
    "Solve the problem. Reason in one short line, then give the final answer as a whole number in the form 'Answer: N'."
)

# (question, the worked reasoning on one line, answer): shown before every one-step problem. Their sentences set
# the scene first and compute last, so answer removal keeps a hint and drops the sentence with the result.
ONE_STEP_EXAMPLES: tuple[tuple[str, str, int], ...] = (
    (
        "Tom has 2 pens and gets 5 more. How many pens does he have?",
        "Tom starts with 2 pens. He gets 5 more. 2 + 5 = 7.",
        7,
    ),
    (
        "There are 9 birds on a tree and 4 fly away. How many birds are left?",
        "There are 9 birds. 4 fly away. 9 - 4 = 5.",
        5,
    ),
)

# (question, answer): one addition, subtraction or comparison each, numbers under 100.
ONE_STEP: tuple[tuple[str, int], ...] = (
    ("Anna has 3 apples and buys 4 more. How many apples does she have?", 7),
    ("A box holds 5 red balls and 2 blue balls. How many balls are in the box?", 7),
    ("Sam had 8 stickers and gave 3 to a friend. How many stickers does Sam have left?", 5),
    ("There are 6 cats and 6 dogs in the yard. How many animals are there?", 12),
    ("A shelf has 10 books and 4 are taken away. How many books are on the shelf now?", 6),
    ("Lily is 7 years old. How old will she be in 2 years?", 9),
    ("A bag has 12 sweets and Ben eats 5. How many sweets are left?", 7),
    ("Mia picks 9 flowers in the morning and 6 in the afternoon. How many flowers does she pick?", 15),
    ("A bus has 15 people and 5 get off. How many people are on the bus now?", 10),
    ("Which number is larger, 38 or 83?", 83),
    ("Joe has 4 toy cars and his sister gives him 4 more. How many toy cars does he have?", 8),
    ("A pencil costs 3 dollars. How many dollars do 2 pencils cost?", 6),
    ("A class has 11 girls and 9 boys. How many children are in the class?", 20),
    ("Max had 20 marbles and lost 8. How many marbles does he have now?", 12),
    ("Which number is smaller, 41 or 14?", 14),
    ("A farmer has 13 hens and buys 3 more. How many hens does he have?", 16),
)

BUILTIN_SETS = ("arithmetic", "one-step")


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


def one_step_prompt(question: str) -> list[Message]:
    """The system prompt, the worked examples as earlier user and assistant turns, then the question."""
    channel = FORMATS["think-tags"]
    messages: list[Message] = [{"role": "system", "content": ONE_STEP_SYSTEM_PROMPT}]
    for example, reasoning, answer in ONE_STEP_EXAMPLES:
        messages.append({"role": "user", "content": example})
        messages.append({"role": "assistant", "content": f"{channel.injected('', reasoning)}Answer: {answer}"})
    messages.append({"role": "user", "content": question})
    return messages


def one_step_problems() -> list[Problem]:
    """The built-in one-step word problems, ids "one-step-01" to "one-step-16"."""
    return [
        Problem(
            id=f"one-step-{number:02d}",
            dataset="one-step",
            prompt=one_step_prompt(question),
            gold=answer,
            checker=functools.partial(check_typed, gold=answer, answer_type="integer", tolerance=0.0),
            meta={"answer_type": "integer", "tolerance": 0.0},
        )
        for number, (question, answer) in enumerate(ONE_STEP, start=1)
    ]


def load_builtin(name: str) -> list[Problem]:
    """A built-in problem set by name (see `BUILTIN_SETS`)."""
    if name == "arithmetic":
        return arithmetic_problems()
    if name == "one-step":
        return one_step_problems()
    raise ConfigError(
        f"builtin: no built-in set {name!r}; available: {', '.join(BUILTIN_SETS)} (e.g. builtin:arithmetic)"
    )
