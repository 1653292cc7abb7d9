"""WebShop conformance: the env's own reward and title nouns against the shared vectors computed with WebShop's
goal.py (shared/conformance, README section 1).

Every reward disagreement must come from the part-of-speech tagger: with the vectors' own title nouns put in
place of ours, all lines agree, and a line whose two products are tagged as in the vectors agrees as it is.
With spaCy and its English model installed (the vectors' set-up) there is no gap at all."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.webshop import check, check_goals, check_title_nouns, compare, load_shop, score_line
from envs.webshop.data import WebShopData, load_data
from envs.webshop.nouns import HeuristicTagger, SpacyTagger

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = SHARED / "conformance"
DATA_ROOT = SHARED / "data"
REWARD_FILE = VECTORS / "webshop_reward.jsonl"
NOUNS_FILE = VECTORS / "webshop_title_nouns.jsonl"


def read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file() or not (DATA_ROOT / "webshop" / "items_1000_products.json").is_file():
        pytest.skip(f"shared WebShop vectors or data not found ({path}, {DATA_ROOT / 'webshop'})")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reward_lines() -> list[dict[str, Any]]:
    return read(REWARD_FILE)


@pytest.fixture(scope="module")
def reference_nouns() -> dict[str, list[str]]:
    return {line["asin"]: line["type_nouns"] for line in read(NOUNS_FILE)}


@pytest.fixture(scope="module")
def shop(reward_lines: list[dict[str, Any]]) -> WebShopData:
    return load_shop(DATA_ROOT)


def classify(lines: list[dict[str, Any]], shop: WebShopData, reference: dict[str, list[str]]) -> dict[str, int]:
    """Per line: agrees, or disagrees with a product tagged differently from the vectors (tagger), or not (other)."""
    counts = {"agree": 0, "tagger": 0, "other": 0}
    for line in lines:
        if not compare(score_line(line, shop), line["expected"]):
            counts["agree"] += 1
            continue
        asins = {line["goal"]["asin"], line["purchased"]["asin"]}
        tagged_apart = any(list(shop.nouns[shop.by_asin[a.lower()]]) != reference.get(a) for a in asins)
        counts["tagger" if tagged_apart else "other"] += 1
    return counts


def test_reward_vectors_agree_except_for_tagger_gaps(reward_lines: list[dict[str, Any]], shop: WebShopData,
                                                     reference_nouns: dict[str, list[str]]) -> None:
    result = check(reward_lines, DATA_ROOT)
    full = result.agree == result.cases
    counts = {"agree": result.agree, "tagger": 0, "other": 0} if full else classify(reward_lines, shop, reference_nouns)
    print(f"\nwebshop_reward.jsonl: {result.agree}/{result.cases} agree with {shop.tagger.name}; "
          f"disagreements from title nouns {counts['tagger']}, other {counts['other']}")
    assert result.cases == len(reward_lines) and counts["agree"] == result.agree
    assert counts["other"] == 0, result.examples
    with_reference_nouns = check(reward_lines, DATA_ROOT, title_nouns=reference_nouns)
    assert with_reference_nouns.agree == with_reference_nouns.cases == len(reward_lines), with_reference_nouns.examples
    if isinstance(shop.tagger, SpacyTagger):
        assert result.agree == result.cases, result.examples


def test_title_noun_vectors(shop: WebShopData) -> None:
    lines = read(NOUNS_FILE)
    result = check_title_nouns(lines, DATA_ROOT)
    print(f"\nwebshop_title_nouns.jsonl: {result.agree}/{result.cases} agree with {shop.tagger.name}")
    assert result.cases == len(lines) == 1000
    if isinstance(shop.tagger, SpacyTagger):
        assert result.agree == result.cases, result.examples


def test_heuristic_fallback_gaps_are_all_tagger_gaps(reward_lines: list[dict[str, Any]],
                                                     reference_nouns: dict[str, list[str]]) -> None:
    """Without spaCy: the rewards still differ only where the heuristic's nouns do."""
    heuristic = load_data(DATA_ROOT / "webshop", tagger=HeuristicTagger())
    counts = classify(reward_lines, heuristic, reference_nouns)
    agree_nouns = sum(list(heuristic.nouns[i]) == reference_nouns.get(p.asin) for i, p in enumerate(heuristic.products))
    print(f"\nheuristic tagger: rewards {counts['agree']}/{len(reward_lines)} agree, {counts['tagger']} tagger gaps; "
          f"title nouns {agree_nouns}/{len(heuristic.products)}")
    assert counts["other"] == 0
    assert counts["tagger"] > 0  # the heuristic is not spaCy: the check sees the difference


def test_goal_list_is_webshops(reward_lines: list[dict[str, Any]]) -> None:
    """With the vectors' seed, task webshop-<shuffled_index> is the line's goal, no-break spaces included."""
    result = check_goals(reward_lines, DATA_ROOT)
    assert result.agree == result.cases == len(reward_lines), result.examples
    nbsp = [line for line in reward_lines if "nbsp" in line["goal_kind"]]
    assert nbsp and all("\xa0" in "".join(line["goal"]["goal_options"].values()) for line in nbsp)


def test_the_checks_can_fail(reward_lines: list[dict[str, Any]], shop: WebShopData) -> None:
    lines = copy.deepcopy(reward_lines[:40])
    with_options = next(i for i in range(4, 40) if "r_option" in lines[i]["expected"])
    lines[0]["expected"]["reward"] += 1e-6
    lines[1]["expected"]["r_price"] = not lines[1]["expected"]["r_price"]
    del lines[with_options]["expected"]["r_option"]  # ours would then have an extra key
    lines[3]["purchased"]["asin"] = "B000NOTHERE"
    result = check(lines, DATA_ROOT)
    assert result.cases == 40 and result.agree == 36
    assert {tuple(e.get("keys", ["error"])) for e in result.examples} == {("reward",), ("r_price",), ("r_option",), ("error",)}
    good, bad = copy.deepcopy(read(NOUNS_FILE)[:2])
    good["type_nouns"] = list(shop.nouns[shop.by_asin[good["asin"].lower()]])  # ours exactly
    bad["type_nouns"] = list(shop.nouns[shop.by_asin[bad["asin"].lower()]])[:-1]  # one noun short
    nouns = check_title_nouns([good, bad], DATA_ROOT)
    assert nouns.agree == 1 and [e["asin"] for e in nouns.examples] == [bad["asin"]]
