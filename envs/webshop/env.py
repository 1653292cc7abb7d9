"""`WebShopEnv`: one shopping episode (search → results → item → Buy Now).

Actions as in WebShop: ``search[keywords]`` on the search page and
``click[button or item]`` for what the page shows (case-insensitive; surrounding
brackets are tolerated). Anything not possible on the current page returns a
message saying why, followed by the unchanged page, and changes nothing. The
reward (`envs.webshop.reward`) is paid at Buy Now, which ends the episode;
success is reward 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from envs.actions import UnknownActionForm
from envs.base import Env
from envs.types import Action, StepResult, TaskSpec, ToolParam, ToolSpec
from envs.webshop.data import WebShopData, load_data
from envs.webshop.expert import expert_step
from envs.webshop.goals import Goal
from envs.webshop.pages import (
    BACK_TO_SEARCH,
    BUY_NOW,
    NEXT_PAGE,
    PREV_PAGE,
    SEP,
    Page,
    ShopState,
    clickables,
    render,
)
from envs.webshop.reward import get_reward

SEARCH_ACTION = "search[<keywords>]"
MAX_QUERY_CHARS = 500

SYSTEM_PROMPT = (
    "You are web shopping. You will be given instructions to buy a product. Use search[keywords] on the search page "
    "and click[value] for a clickable element of the page, written in square brackets in the observation (an item id, "
    "an option value, Back to Search, Next >, < Prev, Description, Features, Reviews, Buy Now). Choose the options the "
    "instruction asks for, then click[Buy Now]."
)


class WebShopEnv(Env[WebShopData]):
    name: ClassVar[str] = "webshop"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ("WebShop-like web shop: search a product catalog, open items, choose options and buy; "
                                  "scored by WebShop's reward on synthetic goals.")
    max_turns: ClassVar[int] = 30
    system_prompt: ClassVar[str] = SYSTEM_PROMPT
    agentgym_create_returns_int: ClassVar[bool] = True
    tools: ClassVar[list[ToolSpec]] = [
        ToolSpec(name="search", description="Search the shop (only on the search page).",
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

    @classmethod
    def load(cls, data_dir: Path | None = None) -> WebShopData:
        return load_data(data_dir)

    # ----- episode ------------------------------------------------------------------
    def start(self, task: TaskSpec) -> str:
        self.goal = self.data.goals[task.task_id]
        self.state = ShopState()
        self.searches = 0
        return self.page()

    def page(self) -> str:
        return render(self.state, self.data.products, self.task.instruction if self.task else "")

    def _refuse(self, message: str) -> StepResult:
        return StepResult(observation=f"Invalid action: {message}{SEP}{self.page()}", info={"invalid_action": True})

    def act(self, action: Action) -> StepResult:
        if action.name == "search":
            return self._search(action.arguments["keywords"])
        return self._click(action.arguments["item"])

    def _search(self, keywords: str) -> StepResult:
        if self.state.page is not Page.search:
            return self._refuse(f"there is no search bar on this page; click[{BACK_TO_SEARCH}] first.")
        query = keywords.strip()
        if not query:
            return self._refuse("search needs keywords, e.g. search[red running shoes].")
        if len(query) > MAX_QUERY_CHARS:
            return self._refuse(f"the search query is longer than {MAX_QUERY_CHARS} characters.")
        self.searches += 1
        self.state = ShopState(page=Page.results, query=query, results=tuple(self.data.index.search(query.lower())))
        return StepResult(observation=self.page())

    def _click(self, raw: str) -> StepResult:
        target = raw.strip()
        if len(target) > 2 and target.startswith("[") and target.endswith("]"):
            target = target[1:-1].strip()
        key = " ".join(target.lower().split())
        if not key:
            return self._refuse("click needs the text of a clickable element, e.g. click[Buy Now].")
        if self.state.page is Page.search:
            return self._refuse(f"nothing to click on the search page; use {SEARCH_ACTION}.")
        if key not in {c.lower() for c in clickables(self.state, self.data.products)}:
            return self._refuse(f"'{target}' is not clickable on this page.")
        st = self.state
        if key == BACK_TO_SEARCH.lower():
            self.state = ShopState()
        elif key == NEXT_PAGE.lower():
            st.page_num += 1
        elif key == PREV_PAGE.lower():
            if st.page is Page.results:
                st.page_num -= 1
            elif st.page is Page.item:
                st.page, st.item, st.chosen = Page.results, -1, {}
            else:
                st.page = Page.item
        elif st.page is Page.results:
            st.page, st.item, st.chosen = Page.item, self.data.by_asin[key], {}
        elif key == BUY_NOW.lower():
            return self._buy()
        elif key in {p.value.lower() for p in (Page.description, Page.features, Page.reviews)}:
            st.page = Page(key.capitalize())
        else:
            self._choose(key)
        return StepResult(observation=self.page())

    def _choose(self, key: str) -> None:
        """Select an option value; a value listed under several options goes to the first not already set to it."""
        st = self.state
        names = [n for n, values in self.data.products[st.item].options.items() if key in values]
        name = next((n for n in names if st.chosen.get(n) != key), names[0])
        st.chosen[name] = key

    def _buy(self) -> StepResult:
        assert self.goal is not None
        st = self.state
        i, g = st.item, self.goal.product
        products = self.data.products
        r = get_reward(products[i], products[g], self.goal, self.data.prices[i], st.chosen,
                       self.data.nouns[i], self.data.nouns[g])
        success = r.reward >= 1.0 - 1e-9
        bought = products[i]
        chosen = ", ".join(f"{k}: {v}" for k, v in st.chosen.items()) or "none"
        st.page = Page.done
        observation = SEP.join(["Thank you for shopping with us!", "Purchased", bought.asin, bought.title,
                                f"Options: {chosen}", f"Price: ${self.data.prices[i]:.2f}",
                                "Your score (min 0.0, max 1.0)", f"{r.reward:.4g}"])
        info = {"success": success, "asin": bought.asin, "r_type": r.r_type, "attribute_matches": r.attribute_matches,
                "option_matches": r.option_matches, "price_ok": r.price_ok}
        return StepResult(observation=observation, reward=r.reward, done=True, info=info)

    # ----- helpers for agents -----------------------------------------------------------
    def valid_actions(self) -> list[str]:
        if self.state.page is Page.search:
            return [SEARCH_ACTION]
        return [f"click[{c}]" for c in clickables(self.state, self.data.products)]

    def expert_action(self) -> str:
        assert self.goal is not None
        return expert_step(self.state, self.goal, self.data.products, self.searches)

    def invalid_action_feedback(self, error: UnknownActionForm) -> str:
        return f"Invalid action: use search[keywords] or click[element]. ({error}){SEP}{self.page()}"
