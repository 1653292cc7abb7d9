"""WebShop's purchase reward (`get_reward` of WebShop's goal.py), paid only at Buy Now.

This follows the goal.py that AgentGym's WebShop server ships (the revision
where goal options are passed as (name, value) pairs); a later WebShop revision
matches 'size' exactly and also credits option values found in the product text.

    reward = r_type × (n_att + n_opt + r_price) / (|attributes| + |options| + 1)

* |attributes|: the goal's attributes (the product's `instruction_attributes`);
  n_att counts those that fuzzy-match (token-set ratio > 85) one of the bought
  product's `Attributes`, or else appear as a substring of its title, bullet
  points or description (lower-cased).
* |options|: the goal's (name, value) options; n_opt counts those that
  fuzzy-match (token-set ratio > 85) one of the options chosen at purchase.
  Both sides are colour-normalised first: a chosen value becomes the first
  colour word it contains; a goal option becomes its value if the value is a
  colour word, else the text "name value" (WebShop passes the (name, value)
  pair, which its fuzzy matcher turns into that text).
  Deviation: WebShop's `normalize_color` tests colours as substrings, so
  'rectangular' became 'tan' and 'r.brown2070' became 'brown', and even buying
  the exact goal option failed to match it on ~6% of the real goals (measured
  with substring matching and the colour list below: the expert scored 1 on
  94.3%). Here a colour must occur as a whole word (not inside a longer run of
  letters or digits). The colour list is this project's own, not WebShop's.
* r_price: 1 if the price paid ≤ the goal's price cap, else 0.
* r_type (product-type match), from the bought product P and goal product G:
  query_match = P.query == G.query; category_match = the ' › '-separated parts
  of their `product_category` share ≥ 2 items; title_score = |N(P) ∩ N(G)| /
  |N(G)| over the titles' noun sets N (0.2 when N(G) is empty). r_type = 1, or
  0.5 when none of query_match, category_match, title_score > 0.2 holds; 0.1
  when title_score < 0.1; 0 when title_score = 0.

Success is reward == 1. Fuzzy matching is RapidFuzz's `token_set_ratio` after
thefuzz's preprocessing (ASCII only, non-alphanumerics → spaces, lower-case).
Known deviation: WebShop finds title nouns with spaCy's POS tagger; spaCy and its
model are not available here, so N(title) is the set of alphabetic words (≥ 2
letters) that are not English function words or common product adjectives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, utils

from envs.webshop.catalog import Product
from envs.webshop.goals import Goal

FUZZY_THRESHOLD = 85

# Colour words, in the order they are tried (the first contained in a value wins).
COLORS: tuple[str, ...] = (
    "almond", "amber", "apricot", "aqua", "army green", "ash", "azure", "beige", "black", "blue", "blush",
    "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne", "charcoal", "cherry", "chocolate",
    "clear", "coffee", "copper", "coral", "cream", "cyan", "denim", "emerald", "espresso", "fuchsia", "gold",
    "gray", "green", "grey", "indigo", "ivory", "khaki", "lavender", "lemon", "lilac", "lime", "magenta",
    "maroon", "mauve", "mint", "mocha", "multicolor", "mustard", "navy", "neon", "nude", "olive", "orange",
    "peach", "pink", "plum", "purple", "rainbow", "red", "rose", "ruby", "rust", "sage", "sand", "silver",
    "tan", "taupe", "teal", "turquoise", "violet", "white", "wine", "yellow",
)
_COLOR_SET = frozenset(COLORS)

_WORD = re.compile(r"[a-z]+")
# Words that are never the product type: function words, units and frequent modifiers.
_NOT_NOUNS = frozenset(
    ["a", "about", "above", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do", "for", "from", "has", "have", "he", "her", "his", "how", "if", "in", "into", "is", "it", "its", "just", "more", "most", "my", "new", "no", "not", "of", "off", "on", "one", "only", "or", "other", "our", "out", "over", "per", "pro", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "two", "three", "four", "five", "six", "up", "very", "was", "we", "were", "what", "when", "which", "while", "who", "will", "with", "without", "you", "your", "x", "xl", "xxl", "xs", "pcs", "pc", "pack", "oz", "ml", "fl", "lb", "lbs", "inch", "inches", "cm", "mm", "ft", "count", "ct", "small", "medium", "large", "big", "mini", "extra", "super", "ultra", "premium", "best", "high", "low", "soft", "hard", "light", "dark", "heavy", "long", "short", "wide", "easy", "natural", "organic", "fresh", "free", "compatible", "portable", "adjustable", "waterproof", "durable", "lightweight", "cute", "classic", "modern", "vintage", "casual", "slim", "fit", "full", "double", "single", "black", "white", "red", "blue", "green", "pink", "gray", "grey", "brown", "yellow", "purple", "orange", "silver", "gold", "clear", "multi", "womens", "mens", "women", "men", "girls", "boys", "kids"]
)


def title_nouns(title: str) -> frozenset[str]:
    """Approximate noun set of a title (see the module docstring)."""
    return frozenset(w for w in _WORD.findall(title.lower()) if len(w) >= 2 and w not in _NOT_NOUNS)


def _process(text: str) -> str:
    return utils.default_process(text.encode("ascii", "ignore").decode("ascii"))


def fuzzy_match(a: str, b: str) -> bool:
    return fuzz.token_set_ratio(a, b, processor=_process) > FUZZY_THRESHOLD


_COLOR_WORDS = tuple((c, re.compile(rf"(?<![a-z0-9]){re.escape(c)}(?![a-z0-9])")) for c in COLORS)


def normalize_chosen(value: str) -> str:
    """The first colour word the chosen value contains as a whole word, else the value."""
    for color, pattern in _COLOR_WORDS:
        if pattern.search(value):
            return color
    return value


def normalize_goal_option(name: str, value: str) -> str:
    return value if value in _COLOR_SET else f"{name} {value}"


@dataclass(frozen=True, slots=True)
class RewardBreakdown:
    reward: float
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float
    attribute_matches: int
    option_matches: int
    price_ok: bool


def type_reward(bought: Product, goal_product: Product, bought_nouns: frozenset[str],
                goal_nouns: frozenset[str]) -> tuple[float, bool, bool, float]:
    query_match = bought.query == goal_product.query
    parts_b = {x.strip() for x in bought.product_category.split("›")}
    parts_g = {x.strip() for x in goal_product.product_category.split("›")}
    category_match = len(parts_b & parts_g) >= 2
    title_score = len(bought_nouns & goal_nouns) / len(goal_nouns) if goal_nouns else 0.2
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


def option_matches(chosen: Mapping[str, str], goal_options: Sequence[tuple[str, str]]) -> int:
    bought = [normalize_chosen(v) for v in chosen.values()]
    n = 0
    for name, value in goal_options:
        target = normalize_goal_option(name, value)
        if any(fuzzy_match(b, target) for b in bought):
            n += 1
    return n


def get_reward(bought: Product, goal_product: Product, goal: Goal, price: float, chosen: Mapping[str, str],
               bought_nouns: frozenset[str] | None = None, goal_nouns: frozenset[str] | None = None) -> RewardBreakdown:
    """Score buying `bought` at `price` with options `chosen` against `goal` (see the module docstring)."""
    b_nouns = bought_nouns if bought_nouns is not None else title_nouns(bought.title)
    g_nouns = goal_nouns if goal_nouns is not None else title_nouns(goal_product.title)
    r_type, query_match, category_match, title_score = type_reward(bought, goal_product, b_nouns, g_nouns)
    n_att = attribute_matches(bought, goal.attributes)
    n_opt = option_matches(chosen, goal.options)
    price_ok = price <= goal.price_upper
    total = (n_att + n_opt + int(price_ok)) / (len(goal.attributes) + len(goal.options) + 1)
    return RewardBreakdown(reward=total * r_type, r_type=r_type, query_match=query_match, category_match=category_match,
                           title_score=title_score, attribute_matches=n_att, option_matches=n_opt, price_ok=price_ok)
