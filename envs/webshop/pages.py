"""The shop's pages: WebShop's page state, what each page lets you click, and the page text in two renderings.

State and clickables follow WebShop's `WebAgentTextEnv` / `SimServer`
(web_agent_site/envs/web_agent_text_env.py): the search page; results pages of
10 (the "Next >" button is always shown, "< Prev" from page 2 on); the item page
(option values, Description / Features / Reviews, Buy Now); the three sub-pages
(Back to Search, < Prev); the done page. `clickables` is WebShop's
`get_available_actions()['clickables']`: the lower-cased texts of the buttons,
then of the product links, then the option values, each once, in that order.

Renderings (`observation` mode):

* `text` (default) — WebShop's observation_mode='text', which AgentGym's server
  serves: the visible text nodes of WebShop's HTML templates, each stripped,
  joined by " [SEP] " (`webshop_text`). As in WebShop, a chosen option is not
  shown, the rating is always "N.A." and the reviews page is empty (WebShop's
  loader never reads reviews), and the done page is WebShop's, with its "None"s.
* `marked` — trajgym's earlier rendering (`marked_text`): clickable strings in
  square brackets, "(selected)" after chosen values, the product's own rating
  and reviews, and a short receipt after Buy Now.
"""

from __future__ import annotations

import json
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
SEARCH_BUTTON = "Search"
SUB_PAGES = ("Description", "Features", "Reviews")
OBSERVATIONS = ("text", "marked")
_ASCII_SPACES = " \n\t\x0c\r"


class Page(str, Enum):
    search = "search"
    results = "results"
    item = "item"
    description = "Description"
    features = "Features"
    reviews = "Reviews"
    done = "done"


SUB_PAGE_KINDS = (Page.description, Page.features, Page.reviews)


@dataclass(slots=True)
class ShopState:
    """Per-session browsing state: small, and only references into the shared catalog."""

    page: Page = Page.search
    keywords: str = ""
    results: tuple[int, ...] = ()
    page_num: int = 1
    item: int = -1
    chosen: dict[str, str] = field(default_factory=dict)
    reward: float = 0.0  # shown on the done page

    def page_results(self) -> tuple[int, ...]:
        start = (self.page_num - 1) * PER_PAGE
        return self.results[start : start + PER_PAGE]

    def has_more(self) -> bool:
        """Whether results lie beyond this page (WebShop shows "Next >" regardless)."""
        return self.page_num * PER_PAGE < len(self.results)


# ----- clickables -----------------------------------------------------------------------------
def buttons(state: ShopState) -> list[str]:
    """The page's buttons in page order (display case)."""
    if state.page is Page.search:
        return [SEARCH_BUTTON]
    if state.page is Page.results:
        return [BACK_TO_SEARCH, *([PREV_PAGE] if state.page_num > 1 else []), NEXT_PAGE]
    if state.page is Page.item:
        return [BACK_TO_SEARCH, PREV_PAGE, *SUB_PAGES, BUY_NOW]
    if state.page in SUB_PAGE_KINDS:
        return [BACK_TO_SEARCH, PREV_PAGE]
    return []


def _keyed_clickables(state: ShopState, products: Sequence[Product]) -> list[tuple[str, str]]:
    """(key, display text) of every clickable, each key once, in WebShop's order. Keys are lower-cased button
    and link texts and the option values as they are (WebShop's `text_to_clickable`)."""
    pairs = [(b.lower(), b) for b in buttons(state)]
    if state.page is Page.results:
        pairs.extend((products[i].asin.lower(), products[i].asin) for i in state.page_results())
    elif state.page is Page.item:
        for values in products[state.item].options.values():
            pairs.extend((v, v) for v in values)
    seen: set[str] = set()
    unique = []
    for key, text in pairs:
        if key not in seen:
            seen.add(key)
            unique.append((key, text))
    return unique


def display_clickables(state: ShopState, products: Sequence[Product]) -> list[str]:
    """The clickables in display case (for the marked rendering)."""
    return [text for _, text in _keyed_clickables(state, products)]


def clickables(state: ShopState, products: Sequence[Product]) -> list[str]:
    """WebShop's `get_available_actions()['clickables']`."""
    return [key for key, _ in _keyed_clickables(state, products)]


def product_link(state: ShopState, products: Sequence[Product], key: str) -> int | None:
    """The catalog index of the product whose link text (lower-cased asin) is `key` on this results page."""
    if state.page is not Page.results:
        return None
    return next((i for i in state.page_results() if products[i].asin.lower() == key), None)


def option_for(state: ShopState, products: Sequence[Product], key: str) -> str | None:
    """The option name a click on value `key` sets: WebShop maps a value to its *last* radio button on the page."""
    if state.page is not Page.item:
        return None
    names = [name for name, values in products[state.item].options.items() if key in values]
    return names[-1] if names else None


# ----- WebShop's text mode ---------------------------------------------------------------------
def text_node(raw: str) -> list[str]:
    """What one text node of the page contributes to WebShop's text observation.

    WebShop parses its HTML with BeautifulSoup, which turns an all-(ASCII-)whitespace
    string into "\\n" if it holds a newline (then skipped) or else " "; every other
    string is kept, stripped. An empty value makes no node at all."""
    if raw == "":
        return []
    if raw.strip(_ASCII_SPACES) == "":
        return [] if "\n" in raw else [""]
    return [raw.strip()]


def _header(instruction: str) -> list[str]:
    return ["Instruction:", *text_node(instruction), BACK_TO_SEARCH]


def tojson(value: object) -> str:
    """Flask's `tojson` filter: sorted keys, ASCII escapes, and <, >, &, ' as \\u escapes."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return text


def _done_page(state: ShopState, products: Sequence[Product]) -> list[str]:
    # WebShop renders done_page.html with only the reward, asin and options; its other fields print "None" or nothing.
    asin = products[state.item].asin
    return ["Thank you for shopping with us!", "Your code:", "None", "(Paste it in your MTurk interface.)",
            "Purchased", "asin", *text_node(asin), "options", tojson(state.chosen), "attrs", "None", "category", "None",
            "query", "None", "product category", "None", "Target", "asin", "options", "attrs", "price upper",
            "instuction text", "category", "product category", "query", "Goal", "None", "Reward",
            "Your score (min 0.0, max 1.0)", str(state.reward), "Reward Details", "None"]


def webshop_text(state: ShopState, products: Sequence[Product], instruction: str) -> str:
    """The current page exactly as WebShop's text observation mode shows it."""
    if state.page is Page.search:
        return SEP.join(["WebShop", "Instruction:", *text_node(instruction), SEARCH_BUTTON])
    if state.page is Page.done:
        return SEP.join(_done_page(state, products))
    parts = _header(instruction)
    if state.page is Page.results:
        parts.append(f"Page {state.page_num} (Total results: {len(state.results)})")
        if state.page_num > 1:
            parts.append(PREV_PAGE)
        parts.append(NEXT_PAGE)
        for i in state.page_results():
            p = products[i]
            parts.extend([*text_node(p.asin), *text_node(p.title), *text_node(p.price_tag)])
        return SEP.join(parts)
    p = products[state.item]
    parts.append(PREV_PAGE)
    if state.page is Page.item:
        for name, values in p.options.items():
            parts.extend(text_node(name))
            for v in values:
                parts.extend(text_node(v))
        parts.extend([*text_node(p.title), *text_node(f"Price: {p.price_tag}"), "Rating: N.A.", *SUB_PAGES, BUY_NOW])
    elif state.page is Page.description:
        parts.extend(text_node(p.description))
    elif state.page is Page.features:
        for bullet in p.bullet_points:
            parts.extend(text_node(f" {bullet}"))
    return SEP.join(parts)


# ----- trajgym's marked rendering --------------------------------------------------------------
def button(text: str) -> str:
    return f"[{text}]"


def marked_text(state: ShopState, products: Sequence[Product], instruction: str) -> str:
    """The current page with clickables in [brackets] and chosen values marked "(selected)"."""
    if state.page is Page.search:
        return SEP.join(["WebShop", "Instruction:", instruction, SEARCH_BUTTON])
    if state.page is Page.done:
        p = products[state.item]
        chosen = ", ".join(f"{k}: {v}" for k, v in state.chosen.items()) or "none"
        return SEP.join(["Thank you for shopping with us!", "Purchased", p.asin, p.title, f"Options: {chosen}",
                         f"Price: {p.price_tag}", "Your score (min 0.0, max 1.0)", f"{state.reward:.4g}"])
    parts = ["Instruction:", instruction, button(BACK_TO_SEARCH)]
    if state.page is Page.results:
        parts.append(f"Page {state.page_num} (Total results: {len(state.results)})")
        if state.page_num > 1:
            parts.append(button(PREV_PAGE))
        parts.append(button(NEXT_PAGE))
        if not state.results:
            parts.append(f"No products match '{state.keywords}'.")
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


def render(state: ShopState, products: Sequence[Product], instruction: str, observation: str = "text") -> str:
    if observation == "marked":
        return marked_text(state, products, instruction)
    return webshop_text(state, products, instruction)
