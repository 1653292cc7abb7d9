"""WebShop conformance: trajgym's own reward code (default mode) against vectors from WebShop's goal.py.

Vector files (shared/conformance/README.md, section 1):

* `webshop_reward.jsonl` — each line a `goal` dict as WebShop's `get_synthetic_goals`
  builds it and a `purchased` {asin, options, price}; `expected` = the reward and
  WebShop's verbose info (+ the two match counts). `check` rebuilds the goal from
  the line (its own price cap, not the env's), scores the purchase with
  `envs.webshop.reward.get_reward` in the env's default grading, and compares the
  reward and every expected key (floats within 1e-9, bools and counts exactly;
  `r_option`/`w_option` must be absent exactly where they are).
* `webshop_title_nouns.jsonl` — per product, the title nouns WebShop's type reward
  keeps; `check_title_nouns` compares the env's tagged nouns (list equality: order
  and duplicates matter, the title score divides by the list's length).

`data_root` is laid out like shared/data: the WebShop files in `data_root/webshop`.
`check_goals` (not a vector kind of its own) tells whether the env's task
``webshop-<shuffled_index>`` is the line's goal: it only holds where the vectors'
price caps were drawn with the env's seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from conformance.report import FileResult
from envs.webshop.data import WebShopData
from envs.webshop.env import WebShopEnv
from envs.webshop.goals import Goal
from envs.webshop.reward import get_reward

TOLERANCE = 1e-9
OPTIONAL_KEYS = ("r_option", "w_option", "r_price", "w_price")


@lru_cache(maxsize=2)
def _load(folder: str) -> WebShopData:
    return WebShopEnv.load_data(Path(folder))


def load_shop(data_root: Path) -> WebShopData:
    """The env's data for `data_root/webshop`, in its default modes (cached per folder)."""
    return _load(str((Path(data_root) / "webshop").resolve()))


def _same(ours: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(ours, bool):
        return isinstance(ours, bool) and isinstance(expected, bool) and ours == expected
    if isinstance(expected, int) and isinstance(ours, int):
        return ours == expected
    if isinstance(expected, (int, float)) and isinstance(ours, (int, float)):
        return math.isclose(float(ours), float(expected), rel_tol=0.0, abs_tol=TOLERANCE)
    return ours == expected


def compare(ours: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """The keys on which `ours` disagrees with `expected` (missing, extra optional, or a different value)."""
    bad = [k for k, v in expected.items() if k not in ours or not _same(ours[k], v)]
    bad += [k for k in OPTIONAL_KEYS if k in ours and k not in expected]
    return bad


def _goal(line_goal: Mapping[str, Any], shop: WebShopData) -> tuple[Goal, int]:
    index = shop.by_asin[str(line_goal["asin"]).lower()]
    options = line_goal.get("goal_options") or {}
    if not isinstance(options, Mapping):
        raise ValueError("goal_options must be a name -> value object (synthetic goals)")
    goal = Goal(product=index, instruction=str(line_goal.get("instruction_text", "")),
                attributes=tuple(str(a) for a in line_goal.get("attributes", ())),
                options=tuple((str(k), str(v)) for k, v in options.items()),
                price_upper=float(line_goal["price_upper"]))
    return goal, index


def score_line(line: Mapping[str, Any], shop: WebShopData,
               title_nouns: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The env's reward and verbose info for one vector line (default grading)."""
    goal, g = _goal(line["goal"], shop)
    bought = line["purchased"]
    i = shop.by_asin[str(bought["asin"]).lower()]
    products = shop.products
    goal_product = products[g]
    goal_nouns: Sequence[str] = shop.nouns[g]
    # The goal side of the type reward is the goal dict's own query / category / name.
    fields = {"query": line["goal"].get("query", goal_product.query),
              "product_category": line["goal"].get("product_category", goal_product.product_category),
              "title": line["goal"].get("name", goal_product.title)}
    if any(getattr(goal_product, k) != v for k, v in fields.items()):
        if fields["title"] != goal_product.title:
            goal_nouns = shop.tagger.nouns([fields["title"]])[0]
        goal_product = dataclasses.replace(goal_product, **fields)
    bought_nouns: Sequence[str] = shop.nouns[i]
    if title_nouns is not None:
        bought_nouns = title_nouns.get(products[i].asin, bought_nouns)
        goal_nouns = title_nouns.get(products[g].asin, goal_nouns)
    chosen = {str(k): str(v) for k, v in (bought.get("options") or {}).items()}
    grading = WebShopEnv.resolve_modes(shop.modes)["grading"]  # the default unless the data says otherwise
    r = get_reward(products[i], goal_product, goal, float(bought["price"]), chosen, bought_nouns, goal_nouns,
                   grading=grading)
    return {"reward": r.reward, **r.verbose()}


def _case(line: Mapping[str, Any]) -> dict[str, Any]:
    return {k: line.get(k) for k in ("goal_index", "shuffled_index", "class", "goal_kind")} | {
        "goal_asin": line.get("goal", {}).get("asin"), "purchased": line.get("purchased")}


def check(lines: Iterable[dict], data_root: Path, *, title_nouns: Mapping[str, Sequence[str]] | None = None) -> FileResult:
    """webshop_reward.jsonl. `title_nouns` (asin -> nouns) replaces the env's tagger where given, to tell
    disagreements that come from part-of-speech tags from the others."""
    shop = load_shop(data_root)
    lines = list(lines)
    asins = [str(x.get(side, {}).get("asin", "")).lower() for x in lines for side in ("goal", "purchased")]
    shop.nouns.warm([shop.by_asin[a] for a in asins if a in shop.by_asin])  # one batch (large catalogs tag lazily)
    result = FileResult()
    for line in lines:
        expected = line["expected"]
        try:
            ours = score_line(line, shop, title_nouns)
        except (KeyError, ValueError, TypeError) as err:
            result.add(False, {**_case(line), "error": f"{type(err).__name__}: {err}", "expected": expected})
            continue
        bad = compare(ours, expected)
        result.add(not bad, {**_case(line), "keys": bad, "ours": ours, "expected": expected})
    return result


def check_title_nouns(lines: Iterable[dict], data_root: Path) -> FileResult:
    """webshop_title_nouns.jsonl: the env's title nouns (its tagger, as the type reward uses them)."""
    shop = load_shop(data_root)
    result = FileResult()
    for line in lines:
        asin, title = str(line["asin"]), str(line["title"])
        i = shop.by_asin.get(asin.lower())
        ours = list(shop.nouns[i]) if i is not None and shop.products[i].title == title else list(shop.tagger.nouns([title])[0])
        expected = list(line["type_nouns"])
        result.add(ours == expected, {"asin": asin, "title": title, "ours": ours, "expected": expected,
                                      "tagger": shop.tagger.name})
    return result


def check_goals(lines: Iterable[dict], data_root: Path) -> FileResult:
    """Whether task webshop-<shuffled_index> has each line's goal (asin, options, cap, text, attributes)."""
    shop = load_shop(data_root)
    result = FileResult()
    for line in lines:
        task = f"webshop-{line.get('shuffled_index')}"
        want = line["goal"]
        goal = shop.goals.get(task)
        ours = None if goal is None else {
            "asin": shop.products[goal.product].asin, "goal_options": dict(goal.options), "price_upper": goal.price_upper,
            "instruction_text": goal.instruction, "attributes": list(goal.attributes)}
        same = ours is not None and all(_same(ours[k], want.get(k)) for k in ours)
        result.add(same, {"task": task, "ours": ours, "expected": {k: want.get(k) for k in (ours or want)}})
    return result
