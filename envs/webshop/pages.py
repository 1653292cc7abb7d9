"""The shop's pages as text, in WebShop's text mode, plus what each page lets you click.

WebShop's text observation is the page's visible strings joined by " [SEP] ".
Here the clickable strings are additionally marked with square brackets
(``[Back to Search]``, ``[B09QQLDJ93]``, ``[x-large]``, ``[Buy Now]``), and the
chosen option values carry a trailing "(selected)". The search bar is not a
button: it is used with ``search[...]`` on the search page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from envs.webshop.catalog import Product

PER_PAGE = 10
SEP = " [SEP] "
BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
BUY_NOW = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")


class Page(str, Enum):
    search = "search"
    results = "results"
    item = "item"
    description = "Description"
    features = "Features"
    reviews = "Reviews"
    done = "done"


@dataclass(slots=True)
class ShopState:
    """Per-session browsing state: small, and only references into the shared catalog."""

    page: Page = Page.search
    query: str = ""
    results: tuple[int, ...] = ()
    page_num: int = 1
    item: int = -1
    chosen: dict[str, str] = field(default_factory=dict)

    def page_results(self) -> tuple[int, ...]:
        start = (self.page_num - 1) * PER_PAGE
        return self.results[start : start + PER_PAGE]

    def has_next(self) -> bool:
        return self.page_num * PER_PAGE < len(self.results)


def button(text: str) -> str:
    return f"[{text}]"


def clickables(state: ShopState, products: Sequence[Product]) -> list[str]:
    """The clickable strings of the current page, in page order (display case)."""
    if state.page is Page.results:
        out = [BACK_TO_SEARCH]
        if state.page_num > 1:
            out.append(PREV_PAGE)
        if state.has_next():
            out.append(NEXT_PAGE)
        out.extend(products[i].asin for i in state.page_results())
        return out
    if state.page is Page.item:
        p = products[state.item]
        out = [BACK_TO_SEARCH, PREV_PAGE]
        for values in p.options.values():
            out.extend(values)
        out.extend(SUB_PAGES)
        out.append(BUY_NOW)
        return out
    if state.page in (Page.description, Page.features, Page.reviews):
        return [BACK_TO_SEARCH, PREV_PAGE]
    return []


def _header(instruction: str) -> list[str]:
    return ["Instruction:", instruction]


def render(state: ShopState, products: Sequence[Product], instruction: str) -> str:
    """The current page as WebShop-style text."""
    if state.page is Page.search:
        return SEP.join(["WebShop", *_header(instruction), "Search"])
    parts = _header(instruction) + [button(BACK_TO_SEARCH)]
    if state.page is Page.results:
        parts.append(f"Page {state.page_num} (Total results: {len(state.results)})")
        if state.page_num > 1:
            parts.append(button(PREV_PAGE))
        if state.has_next():
            parts.append(button(NEXT_PAGE))
        if not state.results:
            parts.append(f"No products match '{state.query}'.")
        for i in state.page_results():
            p = products[i]
            parts.extend([button(p.asin), p.title, p.price_tag])
        return SEP.join(parts)
    p = products[state.item]
    parts.append(button(PREV_PAGE))
    if state.page is Page.item:
        for name, values in p.options.items():
            parts.append(name)
            for v in values:
                parts.append(f"{button(v)} (selected)" if state.chosen.get(name) == v else button(v))
        parts.extend([p.title, f"Price: {p.price_tag}", f"Rating: {p.rating}"])
        parts.extend(button(s) for s in SUB_PAGES)
        parts.append(button(BUY_NOW))
    elif state.page is Page.description:
        parts.append(p.description or "(no description)")
    elif state.page is Page.features:
        parts.extend(p.bullet_points or ("(no features)",))
    elif state.page is Page.reviews:
        if not p.reviews:
            parts.append("(no reviews)")
        for r in p.reviews:
            parts.extend([r.title, r.score, r.body])
    return SEP.join(parts)
