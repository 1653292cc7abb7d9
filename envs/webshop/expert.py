"""The oracle: knowing the goal, search for the product, open it, choose the goal options, buy.

It reads only the current page state, so it can take over at any point of an
episode. It searches the goal product's title first and the goal instruction
second (alternating by the number of searches made so far); on a results page
it opens the product if listed, pages on if the product is further down the
results, else goes back to search for its other query.
"""

from __future__ import annotations

from collections.abc import Sequence

from envs.webshop.catalog import Product
from envs.webshop.goals import Goal
from envs.webshop.pages import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, Page, ShopState


def expert_queries(goal: Goal, products: Sequence[Product]) -> tuple[str, str]:
    return products[goal.product].title.lower(), goal.instruction


def expert_step(state: ShopState, goal: Goal, products: Sequence[Product], searches: int) -> str:
    """The next action (text form). `searches` is how many searches the episode has made so far."""
    if state.page is Page.search:
        queries = expert_queries(goal, products)
        return f"search[{queries[searches % len(queries)]}]"
    if state.page is Page.results:
        if goal.product in state.page_results():
            return f"click[{products[goal.product].asin}]"
        if goal.product in state.results and state.has_next():
            return f"click[{NEXT_PAGE}]"
        return f"click[{BACK_TO_SEARCH}]"
    if state.page is Page.item:
        if state.item != goal.product:
            return f"click[{PREV_PAGE}]"
        for name, value in goal.options:
            if state.chosen.get(name) != value:
                return f"click[{value}]"
        return f"click[{BUY_NOW}]"
    return f"click[{PREV_PAGE}]"
