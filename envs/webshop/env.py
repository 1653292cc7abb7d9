"""`WebShopEnv`: one shopping episode (search → results → item → Buy Now), as WebShop's text environment.

Actions are WebShop's: ``search[keywords]`` and ``click[value]`` for one of the
page's clickables (`envs.webshop.pages`). By default (`parsing=strict`) an action
is read as WebShop's `parse_action` does (``name[argument]``, the name exactly
``search`` or ``click``, the argument lower-cased): a search works from any page,
a click must name a clickable exactly (case aside), and anything else changes
nothing and returns the same page. The reward (`envs.webshop.reward`) is paid at
Buy Now, which ends the episode; success is reward 1.

Named modes (the first of each is WebShop's):

* ``grading``: ``official`` (goal.py's `get_reward` exactly) | ``lenient``
  (exact option purchases always get their credit; see `envs.webshop.reward`).
* ``observation``: ``text`` (WebShop's text mode, as AgentGym serves it) |
  ``marked`` (clickables in [brackets], "(selected)", and a reason with every refused action).
* ``parsing``: ``strict`` | ``lenient`` (verbs in any case, surrounding spaces and
  [brackets] around a click target ignored, whitespace runs — no-break spaces
  included — compared as one space).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, ClassVar

from envs.actions import ActionParseError, UnknownActionForm
from envs.base import Env, ModeSpec
from envs.types import Action, StepResult, TaskSpec, ToolCall, ToolParam, ToolSpec
from envs.webshop.data import WebShopData, load_data
from envs.webshop.expert import best_options, expert_step
from envs.webshop.goals import Goal
from envs.webshop.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    SEARCH_BUTTON,
    SEP,
    SUB_PAGE_KINDS,
    Page,
    ShopState,
    clickables,
    display_clickables,
    option_for,
    product_link,
    render,
)
from envs.webshop.reward import GRADINGS, get_reward
from envs.webshop.search import special_search

SEARCH_ACTION = "search[<keywords>]"
MAX_ACTION_CHARS = 20_000
# WebShop's `parse_action`: the longest name before a "[", then the argument up to the last "]".
WEBSHOP_ACTION = re.compile(r"(.+)\[(.+)\]")

SYSTEM_PROMPT = (
    "You are web shopping. You will be given instructions to buy a product. Use search[keywords] when the page has a "
    "search bar and click[value] for one of the page's clickable elements (an item id, an option value, Back to Search, "
    "Next >, < Prev, Description, Features, Reviews, Buy Now). Choose the options the instruction asks for, then "
    "click[Buy Now]."
)
_SUB_PAGE_KEYS = {p.value.lower(): p for p in SUB_PAGE_KINDS}


def _spaces(text: str) -> str:
    return " ".join(text.split())


class WebShopEnv(Env[WebShopData]):
    name: ClassVar[str] = "webshop"
    version: ClassVar[str] = "0.2.0"
    description: ClassVar[str] = ("WebShop: search a product catalog, open items, choose options and buy; scored by "
                                  "WebShop's get_reward on its synthetic goals.")
    max_turns: ClassVar[int] = 30
    system_prompt: ClassVar[str] = SYSTEM_PROMPT
    agentgym_create_returns_int: ClassVar[bool] = True
    modes: ClassVar[tuple[ModeSpec, ...]] = (
        ModeSpec("grading", GRADINGS, "official: WebShop's get_reward exactly (colour substrings, (name, value) "
                                      "tuples, no-break spaces); lenient: an exact option purchase always matches"),
        ModeSpec("observation", ("text", "marked"), "text: WebShop's text observation; marked: clickables in "
                                                    "[brackets], chosen options marked, reasons for refused actions"),
        ModeSpec("parsing", ("strict", "lenient"), "strict: WebShop's parse_action; lenient: case, brackets and "
                                                   "whitespace around click targets forgiven"),
    )
    tools: ClassVar[list[ToolSpec]] = [
        ToolSpec(name="search", description="Search the shop.",
                 params=[ToolParam(name="keywords", description="search keywords")], text_template="search[{keywords}]"),
        ToolSpec(name="click", description="Click a button, item id or option value shown on the page.",
                 params=[ToolParam(name="item", description="the clickable text, e.g. Buy Now or an item id")],
                 text_template="click[{item}]"),
    ]

    def __init__(self, data: WebShopData) -> None:
        super().__init__(data)
        self.state = ShopState()
        self.goal: Goal | None = None
        self.searches = 0
        self._plan: dict[str, str] | None = None
        self._rng = random.Random(0)

    @classmethod
    def load(cls, data_dir: Path | None = None) -> WebShopData:
        return load_data(data_dir)

    def mode(self, axis: str) -> str:
        """The value of a named mode (its default where the data was loaded without `load_data`)."""
        value = self.data.modes.get(axis)
        return value if value is not None else next(m.choices[0] for m in self.modes if m.axis == axis)

    # ----- episode ------------------------------------------------------------------
    def start(self, task: TaskSpec) -> str:
        self.goal = self.data.goals[task.task_id]
        self.state = ShopState()
        self.searches = 0
        self._plan = None
        self._rng = random.Random(task.task_id)
        return self.page()

    def page(self) -> str:
        return render(self.state, self.data.products, self.task.instruction if self.task else "", self.mode("observation"))

    def _refuse(self, message: str) -> StepResult:
        info: dict[str, Any] = {"invalid_action": True, "reason": message}
        if self.mode("observation") == "marked":
            return StepResult(observation=f"Invalid action: {message}{SEP}{self.page()}", info=info)
        return StepResult(observation=self.page(), info=info)  # WebShop: an invalid action does nothing

    def parse_action(self, action: str | ToolCall | dict[str, Any]) -> Action:
        if not isinstance(action, str) or self.mode("parsing") != "strict":
            return super().parse_action(action)
        text = action.strip()
        if text.endswith("</s>"):
            text = text[: -len("</s>")].rstrip()
        if not text:
            raise ActionParseError("empty action")
        if len(text) > MAX_ACTION_CHARS:
            raise ActionParseError(f"action longer than {MAX_ACTION_CHARS} characters")
        m = WEBSHOP_ACTION.match(text)
        if m is None or m.group(1) not in ("search", "click"):
            raise UnknownActionForm(f"{text[:200]!r} is not search[keywords] or click[value]")
        verb, argument = m.groups()
        return Action(name=verb, arguments={"keywords" if verb == "search" else "item": argument}, text=text)

    def act(self, action: Action) -> StepResult:
        if action.name == "search":
            return self._search(action.arguments["keywords"])
        return self._click(action.arguments["item"])

    def _search(self, raw: str) -> StepResult:
        keywords = raw.lower()
        if self.mode("parsing") == "lenient":
            keywords = keywords.strip()
        if not keywords:
            return self._refuse("search needs keywords, e.g. search[red running shoes].")
        self.searches += 1
        words = keywords.split(" ")
        found = special_search(words, self.data.products, self._rng)
        results = found if found is not None else self.data.index.search(" ".join(words))
        self.state = ShopState(page=Page.results, keywords=keywords, results=tuple(results))
        return StepResult(observation=self.page())

    def _click_key(self, raw: str) -> str | None:
        """The clickable `raw` names on this page (WebShop: its lower case, exactly), or None."""
        keys = clickables(self.state, self.data.products)
        if self.mode("parsing") == "strict":
            key = raw.lower()
            return key if key in keys and key != SEARCH_BUTTON.lower() else None
        target = raw.strip()
        if len(target) > 2 and target.startswith("[") and target.endswith("]"):
            target = target[1:-1]
        wanted = _spaces(target.lower())
        return next((k for k in keys if _spaces(k) == wanted and k != SEARCH_BUTTON.lower()), None)

    def _click(self, raw: str) -> StepResult:
        st = self.state
        if st.page is Page.search:
            return self._refuse(f"nothing to click on the search page; use {SEARCH_ACTION}.")
        key = self._click_key(raw)
        if key is None:
            return self._refuse(f"'{raw.strip()}' is not clickable on this page.")
        # Dispatch by the clicked text first, as WebShop's server does.
        if key == BUY_NOW.lower():
            return self._buy()
        if key == BACK_TO_SEARCH.lower():
            self.state = ShopState()
        elif key == NEXT_PAGE.lower() and st.page is Page.results:
            st.page_num += 1
        elif key == PREV_PAGE.lower() and st.page is Page.results:
            st.page_num -= 1
        elif key == PREV_PAGE.lower() and st.page in SUB_PAGE_KINDS:
            st.page = Page.item
        elif key == PREV_PAGE.lower() and st.page is Page.item:
            st.page, st.item, st.chosen = Page.results, -1, {}
        elif key in _SUB_PAGE_KEYS:
            st.page = _SUB_PAGE_KEYS[key]
        else:
            item = product_link(st, self.data.products, key)
            if item is not None:
                st.page, st.item, st.chosen = Page.item, item, {}
            else:
                name = option_for(st, self.data.products, key)
                if name is not None:
                    st.chosen[name] = key
        return StepResult(observation=self.page())

    def _buy(self) -> StepResult:
        assert self.goal is not None
        st = self.state
        i, g = st.item, self.goal.product
        products = self.data.products
        grading = self.mode("grading")
        r = get_reward(products[i], products[g], self.goal, self.data.prices[i], st.chosen,
                       self.data.nouns[i], self.data.nouns[g], grading=grading)
        st.page, st.reward = Page.done, r.reward
        info = {"success": r.reward >= 1.0 - 1e-9, "asin": products[i].asin, "options": dict(st.chosen),
                "grading": grading, "noun_tagger": self.data.tagger.name, **r.verbose()}
        return StepResult(observation=self.page(), reward=r.reward, done=True, info=info)

    # ----- helpers for agents -----------------------------------------------------------
    def valid_actions(self) -> list[str]:
        """WebShop's available actions: search where the page has a search bar, else a click per clickable."""
        if self.state.page is Page.search:
            return [SEARCH_ACTION]
        if self.mode("observation") == "marked":
            return [f"click[{c}]" for c in display_clickables(self.state, self.data.products)]
        return [f"click[{c}]" for c in clickables(self.state, self.data.products)]

    def expert_action(self) -> str:
        assert self.goal is not None
        if self._plan is None:
            product = self.data.products[self.goal.product]
            self._plan = best_options(self.goal, product, self.mode("grading"))
        return expert_step(self.state, self.goal, self.data.products, self.searches, self._plan)

    def invalid_action_feedback(self, error: UnknownActionForm) -> str:
        if self.mode("observation") == "marked":
            return f"Invalid action: use search[keywords] or click[element]. ({error}){SEP}{self.page()}"
        return self.page()
