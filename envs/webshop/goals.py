"""WebShop's synthetic goals and their train / dev / test splits.

As WebShop's `get_synthetic_goals`: every product with an instruction gives one
goal per combination of its option values (option names sorted), graded on the
product's `instruction_attributes`, those options and a price cap. Each
product's purchase price is its single price, or a uniform draw from its
[low, high] range; the cap is the larger of two of the first four multiples of
$10 above that price (no cap, 1,000,000, when fewer than two exist). The goal
text is ``{instruction} with {name}: {value}, and ..., and price lower than
{cap:.2f} dollars`` (the instruction as written: unlike human goals, synthetic
ones keep a trailing '.'). The goals are then shuffled with seed
233, as WebShop does, and the first ones are the test split.

Randomness uses private `random.Random(233)` generators (prices and caps, then
the shuffle), so the goal list and task ids are the same on every start.

Split sizes: WebShop's convention is test = the first 500 goals, dev = the next
1,000 and train = the rest. The real 1,000-product file gives 6,910 goals, so it
gets exactly that; a smaller catalog gets the same proportions
(500/6,910 and 1,000/6,910 of its goals, at least one each when it has ≥ 3 goals).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from envs.types import Split
from envs.webshop.catalog import Product

PRICE_STEPS: tuple[float, ...] = tuple(10.0 * i for i in range(1, 100))
NO_PRICE_CAP = 1_000_000.0
TEST_GOALS, DEV_GOALS, REFERENCE_GOALS = 500, 1000, 6910
SHUFFLE_SEED = 233


@dataclass(frozen=True, slots=True)
class Goal:
    """One shopping goal: the product (by index into the catalog) and what the grader checks."""

    product: int
    instruction: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, str], ...]
    price_upper: float


def purchase_prices(products: Sequence[Product], rng: random.Random) -> list[float]:
    """Price paid at Buy Now for each product (WebShop's `generate_product_prices`)."""
    prices = []
    for p in products:
        prices.append(p.pricing[0] if len(p.pricing) == 1 else rng.uniform(p.pricing[0], p.pricing[1]))
    return prices


def _price_cap(price: float, rng: random.Random) -> tuple[float, str]:
    steps = [s for s in PRICE_STEPS if s > price][:4]
    if len(steps) < 2:
        return NO_PRICE_CAP, ""
    cap = sorted(rng.sample(steps, 2))[1]
    return cap, f", and price lower than {cap:.2f} dollars"


def synthetic_goals(products: Sequence[Product], prices: Sequence[float], rng: random.Random) -> list[Goal]:
    goals: list[Goal] = []
    for index, product in enumerate(products):
        if product.instruction is None or not product.instruction_attributes:  # WebShop asserts attributes
            continue
        cap, price_text = _price_cap(prices[index], rng)
        names = sorted(product.options)
        for combo in itertools.product(*(product.options[n] for n in names)):
            chosen = tuple(zip(names, combo))
            option_text = ", and ".join(f"{k}: {v}" for k, v in chosen)
            option_text = f" with {option_text}" if option_text else ""
            goals.append(Goal(product=index, instruction=f"{product.instruction}{option_text}{price_text}",
                              attributes=product.instruction_attributes, options=chosen, price_upper=cap))
    return goals


def split_sizes(n: int) -> tuple[int, int]:
    """(test, dev) sizes for `n` goals; see the module docstring."""
    if n >= REFERENCE_GOALS:
        return TEST_GOALS, DEV_GOALS
    if n < 3:
        return n, 0
    test = max(1, round(n * TEST_GOALS / REFERENCE_GOALS))
    dev = max(1, round(n * DEV_GOALS / REFERENCE_GOALS))
    return test, dev


def shuffled_with_splits(goals: list[Goal]) -> list[tuple[Goal, Split]]:
    order = list(goals)
    random.Random(SHUFFLE_SEED).shuffle(order)
    n_test, n_dev = split_sizes(len(order))
    out = []
    for i, goal in enumerate(order):
        split = Split.test if i < n_test else Split.dev if i < n_test + n_dev else Split.train
        out.append((goal, split))
    return out
