"""The oracle: knowing the goal, search for the product, open it, choose the options that score best, buy.

It reads only the current page state, so it can take over at any point of an
episode. It searches the goal product's title first and the goal instruction
second (alternating by the number of searches made so far; brackets, which
WebShop's action syntax cannot carry, become spaces); on a results page it
opens the product if listed, pages on if the product is further down the
results, else goes back to search for its other query.

Options: the goal's own values, unless the grading in force credits another
choice with more goal options (WebShop's colour-substring and no-break-space
quirks can leave an exact purchase without its option credit; `best_options`
then looks for values that do get it). Values WebShop's action syntax cannot
click (holding brackets) are left out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from envs.webshop.catalog import Product
from envs.webshop.goals import Goal
from envs.webshop.pages import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PER_PAGE, PREV_PAGE, Page, ShopState, option_for
from envs.webshop.reward import option_matches

MAX_COMBINATIONS = 20_000
_ACTION = re.compile(r"(.+)\[(.+)\]")


def clickable_value(value: str) -> bool:
    """Whether ``click[value]`` parses back to `value` under WebShop's action syntax."""
    m = _ACTION.match(f"click[{value}]")
    return m is not None and m.groups() == ("click", value)


def search_text(text: str) -> str:
    return " ".join(re.sub(r"[\[\]]", " ", text).split())


def expert_queries(goal: Goal, products: Sequence[Product]) -> tuple[str, str]:
    return search_text(products[goal.product].title.lower()), search_text(goal.instruction)


def _coverage(choice: dict[str, str], goal: Goal, grading: str) -> int:
    return option_matches(choice, goal.options, grading)


def best_options(goal: Goal, product: Product, grading: str = "official") -> dict[str, str]:
    """Option values to buy `product` with: the goal's own, unless another clickable choice matches more goal options."""
    exact = {name: value for name, value in goal.options if clickable_value(value)}
    target = len(goal.options)
    if _coverage(exact, goal, grading) >= target:
        return exact
    names = list(product.options)
    # Per value, the goal options it matches on its own (the count is a union over the chosen values).
    masks: dict[str, list[tuple[str | None, int]]] = {}
    for name in names:
        entries: list[tuple[str | None, int]] = [(None, 0)]
        for value in product.options[name]:
            if not clickable_value(value):
                continue
            mask = sum(1 << k for k, g in enumerate(goal.options) if option_matches({name: value}, (g,), grading))
            entries.append((value, mask))
        masks[name] = entries
    best, best_n = exact, _coverage(exact, goal, grading)
    sizes = [len(masks[n]) for n in names]
    total = 1
    for s in sizes:
        total *= s
    if total <= MAX_COMBINATIONS:
        for combo in itertools.product(*(masks[n] for n in names)):
            union = 0
            for _, m in combo:
                union |= m
            n = bin(union).count("1")
            if n > best_n:
                choice = {name: v for name, (v, _) in zip(names, combo) if v is not None}
                if _coverage(choice, goal, grading) > best_n:
                    best, best_n = choice, _coverage(choice, goal, grading)
            if best_n >= target:
                break
        return best
    # Too many combinations: improve one option name at a time.
    choice = dict(exact)
    for name in names:
        for value, _ in masks[name][1:]:
            trial = {**choice, name: value}
            n = _coverage(trial, goal, grading)
            if n > best_n:
                choice, best_n = trial, n
    return choice


def expert_step(state: ShopState, goal: Goal, products: Sequence[Product], searches: int,
                options: dict[str, str] | None = None) -> str:
    """The next action (text form). `searches` is how many searches the episode has made so far;
    `options` the values to buy with (default: the goal's)."""
    plan = dict(goal.options) if options is None else options
    if state.page is Page.search:
        queries = expert_queries(goal, products)
        return f"search[{queries[searches % len(queries)]}]"
    if state.page is Page.results:
        if goal.product in state.page_results():
            return f"click[{products[goal.product].asin}]"
        if goal.product in state.results[state.page_num * PER_PAGE :]:
            return f"click[{NEXT_PAGE}]"
        return f"click[{BACK_TO_SEARCH}]"
    if state.page is Page.item:
        if state.item != goal.product:
            return f"click[{PREV_PAGE}]"
        for name, value in plan.items():
            # a value listed under several options sets the last of them (WebShop): skip what cannot be set
            if state.chosen.get(name) != value and option_for(state, products, value) == name:
                return f"click[{value}]"
        return f"click[{BUY_NOW}]"
    return f"click[{PREV_PAGE}]"
