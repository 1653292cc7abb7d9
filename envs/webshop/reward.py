"""WebShop's purchase reward: `get_reward` of princeton-nlp/WebShop's engine/goal.py (@64fa2a5), paid at Buy Now.

    reward = (n_att + n_opt + r_price) / (|attributes| + |options| + 1) × r_type

Official grading (the default) reproduces goal.py, quirks included:

* n_att: goal attributes that score > 85 (thefuzz 0.19 `token_set_ratio`, see
  `envs.webshop.fuzzy`) against one of the bought product's `Attributes`, or else
  occur as a substring of its lower-cased title, joined bullet points or description.
* n_opt: goal options matched (> 85) by one of the chosen option values. The
  chosen values go through WebShop's `normalize_color` as strings (substring
  test: 'r.brown2070' → 'brown'); each goal option is the (name, value) tuple, so
  it is only replaced when its value *is* a colour word, and is otherwise scored as
  the tuple's `str()`: ``"('color', 'r.brown2070')"``, where a no-break space
  appears as the four characters ``\\xa0``. An exact purchase can therefore miss
  its option; that is the benchmark.
* r_price: price paid ≤ the goal's cap (a bool; there is no price term when the
  cap is ≤ 0, where WebShop's formula would fail).
* r_type from query_match (same search query), category_match (≥ 2 shared
  ' › '-separated `product_category` parts) and title_score =
  |set(N_bought) ∩ set(N_goal)| / len(N_goal), N = the title's noun *list*
  (`envs.webshop.nouns`; duplicates count in the denominator), 0.2 when N_goal is
  empty: r_type = 1, or 0.5 if none of the three holds (title_score > 0.2);
  then 0.1 if title_score < 0.1, and 0 if it is 0.

`grading=lenient` changes only the option term: values are compared with their
whitespace runs collapsed (so no-break spaces do not matter), a chosen value is
colour-normalised only by a whole-word colour, the goal option is the text
"name value", and a chosen value equal to the goal value always matches. An exact
purchase then always gets its options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envs.webshop.catalog import Product
from envs.webshop.colors import COLOR_SET, normalize_color, normalize_color_words
from envs.webshop.fuzzy import token_set_ratio
from envs.webshop.goals import Goal

FUZZY_THRESHOLD = 85
GRADINGS = ("official", "lenient")


@dataclass(frozen=True, slots=True)
class RewardInfo:
    """The total and every part of WebShop's verbose info dict, plus the two match counts."""

    reward: float
    r_type: float
    r_att: float
    w_att: float
    query_match: bool
    category_match: bool
    title_score: float
    r_option: float | None  # None when the goal has no options (WebShop then leaves the key out)
    w_option: float | None
    r_price: bool | None  # None when the cap is <= 0
    w_price: float | None
    num_attr_matches: int
    num_option_matches: int

    @property
    def attribute_matches(self) -> int:
        return self.num_attr_matches

    @property
    def option_matches(self) -> int:
        return self.num_option_matches

    @property
    def price_ok(self) -> bool:
        return bool(self.r_price)

    def verbose(self) -> dict[str, Any]:
        """WebShop's `get_reward(..., verbose=True)` info dict (keys absent where WebShop omits them) + the counts."""
        info: dict[str, Any] = {"r_type": self.r_type, "r_att": self.r_att, "w_att": self.w_att,
                                "query_match": self.query_match, "category_match": self.category_match,
                                "title_score": self.title_score}
        if self.r_option is not None:
            info["r_option"], info["w_option"] = self.r_option, self.w_option
        if self.r_price is not None:
            info["r_price"], info["w_price"] = self.r_price, self.w_price
        info["num_attr_matches"] = self.num_attr_matches
        info["num_option_matches"] = self.num_option_matches
        return info


def fuzzy_match(a: object, b: object) -> bool:
    return token_set_ratio(a, b) > FUZZY_THRESHOLD


def category_parts(product_category: str) -> set[str]:
    return {x.strip() for x in product_category.split("›")}


def type_reward(bought: Product, goal_product: Product, bought_nouns: Sequence[str],
                goal_nouns: Sequence[str]) -> tuple[float, bool, bool, float]:
    """(r_type, query_match, category_match, title_score) as WebShop's `get_type_reward`."""
    query_match = bought.query == goal_product.query
    category_match = len(category_parts(bought.product_category) & category_parts(goal_product.product_category)) >= 2
    if len(goal_nouns) == 0:
        title_score = 0.2
    else:
        title_score = len(set(bought_nouns) & set(goal_nouns)) / len(goal_nouns)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type, query_match, category_match, title_score


def attribute_matches(bought: Product, goal_attributes: Sequence[str]) -> int:
    n = 0
    texts: tuple[str, str, str] | None = None
    for g_attr in goal_attributes:
        if any(fuzzy_match(p_attr, g_attr) for p_attr in bought.attributes):
            n += 1
            continue
        if texts is None:
            texts = (bought.title.lower(), " ".join(bought.bullet_points).lower(), bought.description.lower())
        if any(g_attr in t for t in texts):
            n += 1
    return n


def official_option_matches(chosen_values: Sequence[str], goal_options: Sequence[tuple[str, str]]) -> int:
    """WebShop's `get_option_reward` count: normalize_color on both sides, the goal side as (name, value) tuples."""
    bought = [normalize_color(v) for v in chosen_values]
    targets = [normalize_color((name, value)) for name, value in goal_options]
    return sum(1 for g in targets if any(fuzzy_match(p, g) for p in bought))


def _spaces(text: str) -> str:
    return " ".join(text.split())


def lenient_option_matches(chosen_values: Sequence[str], goal_options: Sequence[tuple[str, str]]) -> int:
    bought = [_spaces(v) for v in chosen_values]
    normalised = [normalize_color_words(v) for v in bought]
    n = 0
    for name, value in goal_options:
        value = _spaces(value)
        target = value if value in COLOR_SET else f"{_spaces(name)} {value}"
        if any(v.lower() == value.lower() for v in bought) or any(fuzzy_match(p, target) for p in normalised):
            n += 1
    return n


def option_matches(chosen: Mapping[str, str], goal_options: Sequence[tuple[str, str]], grading: str = "official") -> int:
    values = list(chosen.values())
    if grading == "lenient":
        return lenient_option_matches(values, goal_options)
    return official_option_matches(values, goal_options)


def get_reward(bought: Product, goal_product: Product, goal: Goal, price: float, chosen: Mapping[str, str],
               bought_nouns: Sequence[str] | None = None, goal_nouns: Sequence[str] | None = None,
               grading: str = "official") -> RewardInfo:
    """Score buying `bought` at `price` with options `chosen` against `goal` (see the module docstring).
    Title nouns are tagged here when not given (callers with many purchases pass precomputed ones)."""
    if grading not in GRADINGS:
        raise ValueError(f"grading must be one of {', '.join(GRADINGS)}, not {grading!r}")
    if bought_nouns is None or goal_nouns is None:
        from envs.webshop.nouns import default_tagger

        tagged = default_tagger().nouns([bought.title, goal_product.title])
        bought_nouns = tagged[0] if bought_nouns is None else bought_nouns
        goal_nouns = tagged[1] if goal_nouns is None else goal_nouns
    r_type, query_match, category_match, title_score = type_reward(bought, goal_product, bought_nouns, goal_nouns)
    n_att = attribute_matches(bought, goal.attributes)
    n_opt = option_matches(chosen, goal.options, grading)
    r_price = price <= goal.price_upper if goal.price_upper > 0 else None
    n_attrs, n_opts = len(goal.attributes), len(goal.options)
    denominator = n_attrs + n_opts + 1
    total = (n_att + n_opt + (r_price or 0)) / denominator
    total *= r_type
    return RewardInfo(
        reward=total, r_type=r_type, r_att=n_att / n_attrs if n_attrs else 0.0, w_att=n_attrs / denominator,
        query_match=query_match, category_match=category_match, title_score=title_score,
        r_option=n_opt / n_opts if n_opts else None, w_option=n_opts / denominator if n_opts else None,
        r_price=r_price, w_price=1 / denominator if r_price is not None else None,
        num_attr_matches=n_att, num_option_matches=n_opt,
    )
