"""Unit tests of the web shop: catalog parsing, goals, splits, search, reward terms, pages, actions, expert."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from envs.types import Split
from envs.webshop import builtin
from envs.webshop.catalog import build_products, parse_pricing
from envs.base import DataDirError
from envs.webshop.data import WebShopData, find_files, load_data
from envs.webshop.env import WebShopEnv
from envs.webshop.goals import Goal, split_sizes, synthetic_goals
from envs.webshop.reward import get_reward, normalize_chosen, option_matches, title_nouns


@pytest.fixture(scope="module")
def data() -> WebShopData:
    return WebShopEnv.load(None)


def record(asin: str, **kw: object) -> dict:
    base = {"asin": asin, "name": f"Acme Blue Running Shoes {asin}", "query": "running shoes",
            "product_category": "Clothing › Shoes › Running", "category": "fashion", "full_description": "Light shoes.",
            "small_description": ["Rubber sole"], "pricing": "$20.00", "customization_options": ""}
    base.update(kw)
    return base


# ----- catalog -------------------------------------------------------------------------
def test_raw_records_are_normalised_like_webshop_loader() -> None:
    custom = {"Size": [{"value": "X-Large"}, {"value": "8/9"}], "Color": [{"value": "Navy\xa0Blue "}]}
    recs = [record("B000000001", customization_options=custom, pricing="$19.99$27.99"),
            record("nan"), record("B0000000012345"), record("B000000001", name="duplicate"),
            record("B000000002", pricing="")]
    ins = {"B000000001": {"attributes": ["rubber sole"], "instruction": "i need shoes.", "instruction_attributes": ["rubber sole"]}}
    products = build_products(recs, ins)
    assert [p.asin for p in products] == ["B000000001", "B000000002"]
    p = products[0]
    assert p.title == "Acme Blue Running Shoes B000000001"
    assert p.options == {"size": ("x-large", "8 | 9"), "color": ("navy blue",)}
    assert p.pricing == (19.99, 27.99) and p.price_tag == "$19.99 to $27.99"
    assert p.attributes == ("rubber sole",) and p.instruction_attributes == ("rubber sole",)
    assert products[1].pricing == (100.0,) and products[1].attributes == ("DUMMY_ATTR",)
    assert parse_pricing([5, 7.5, 9]) == (5.0, 7.5)


# ----- goals and splits ----------------------------------------------------------------
def test_one_goal_per_option_combination_with_price_cap() -> None:
    recs = [record("B000000001", options={"size": ["s", "m", "l"], "color": ["red", "blue"]}, pricing=[23.5])]
    ins = {"B000000001": {"attributes": ["rubber sole"], "instruction": "i need running shoes.",
                          "instruction_attributes": ["rubber sole"]}}
    products = build_products(recs, ins)
    goals = synthetic_goals(products, [23.5], random.Random(1))
    assert len(goals) == 6
    assert {g.options for g in goals} == {(("color", c), ("size", s)) for c in ("red", "blue") for s in ("s", "m", "l")}
    cap = goals[0].price_upper
    assert cap in (40.0, 50.0, 60.0)  # larger of two of the first four $10 steps above 23.5
    assert goals[0].instruction == f"i need running shoes. with color: red, and size: s, and price lower than {cap:.2f} dollars"


def test_no_price_cap_when_price_is_near_the_top() -> None:
    products = build_products([record("B000000001", pricing=[985.0])],
                              {"B000000001": {"attributes": ["x"], "instruction": "i need it", "instruction_attributes": ["x"]}})
    (goal,) = synthetic_goals(products, [985.0], random.Random(1))
    assert goal.price_upper == 1_000_000 and goal.instruction == "i need it"


def test_split_sizes_follow_webshop_convention() -> None:
    assert split_sizes(6910) == (500, 1000)
    assert split_sizes(12000) == (500, 1000)
    assert split_sizes(691) == (50, 100)
    assert split_sizes(2) == (2, 0)


def test_builtin_data_is_deterministic_with_stable_ids(data: WebShopData) -> None:
    again = WebShopEnv.load(None)
    assert len(data.products) == builtin.N_PRODUCTS
    assert [t.model_dump() for t in data.tasks.values()] == [t.model_dump() for t in again.tasks.values()]
    counts = data.counts()
    n = sum(counts.values())
    assert (counts[Split.test], counts[Split.dev]) == split_sizes(n)
    first = data.task_ids()[: counts[Split.test]]
    assert all(data.tasks[t].split is Split.test for t in first)


def test_builtin_written_files_load_through_the_data_dir_loader(tmp_path: Path, data: WebShopData) -> None:
    assert builtin.main([str(tmp_path)]) == 0
    from_dir = load_data(tmp_path)
    assert [t.instruction for t in from_dir.tasks.values()] == [t.instruction for t in data.tasks.values()]


def test_loader_refuses_files_outside_the_data_dir(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    records, ins = builtin.generate()
    (outside / "items_x.json").write_text(json.dumps(records))
    root = tmp_path / "root"
    root.mkdir()
    (root / "items_ins_v2_x.json").write_text(json.dumps(ins))
    (root / "items_shuffle.json").symlink_to(outside / "items_x.json")
    with pytest.raises(DataDirError, match="outside"):
        find_files(root)
    with pytest.raises(DataDirError):
        find_files(tmp_path / "missing")
    with pytest.raises(DataDirError, match="needs"):
        find_files(outside)


# ----- search --------------------------------------------------------------------------
def test_search_ranks_matching_products_first(data: WebShopData) -> None:
    hits = data.index.search("wireless earbuds")
    assert hits and len(hits) <= 50
    assert all(data.products[i].query == "wireless earbuds" for i in hits[:5])
    assert data.index.search("the of and") == []
    assert data.index.search("zzzqqq") == []


# ----- reward --------------------------------------------------------------------------
def shop() -> tuple[list, Goal]:
    recs = [
        record("B000000001", name="Acme Trail Running Shoes", options={"size": ["8", "9"], "color": ["navy blue", "red"]},
               pricing=[40.0], Attributes=["rubber sole", "non slip"]),
        record("B000000002", name="Acme Trail Running Shoes Lite", pricing=[30.0], Attributes=["rubber sole"]),
        record("B000000003", name="Ceramic Coffee Mug", query="mugs", product_category="Kitchen › Mugs", pricing=[9.0]),
        record("B000000004", name="Trail Socks Hat Scarf Gloves Belt Bag Wallet Watch Mug", query="socks",
               product_category="Outdoor › Socks", pricing=[9.0]),
        record("B000000005", name="Running Belt Gloves Scarf", query="belts", product_category="Outdoor › Belts", pricing=[9.0]),
    ]
    products = build_products(recs, {})
    goal = Goal(product=0, instruction="i need trail running shoes", attributes=("rubber sole", "non slip"),
                options=(("color", "navy blue"), ("size", "9")), price_upper=50.0)
    return products, goal


def test_reward_is_one_for_the_exact_purchase() -> None:
    products, goal = shop()
    r = get_reward(products[0], products[0], goal, 40.0, {"size": "9", "color": "navy blue"})
    assert r.reward == 1.0 and r.r_type == 1.0


def test_reward_terms_each_count_once() -> None:
    products, goal = shop()
    g = products[0]
    wrong_option = get_reward(g, g, goal, 40.0, {"size": "8", "color": "navy blue"})
    assert wrong_option.option_matches == 1 and wrong_option.reward == pytest.approx(4 / 5)
    over_price = get_reward(g, g, dataclasses.replace(goal, price_upper=35.0), 40.0, {"size": "9", "color": "navy blue"})
    assert not over_price.price_ok and over_price.reward == pytest.approx(4 / 5)
    # The sibling lacks "non slip" (neither attribute nor text); same query → type 1.
    missing_attr = get_reward(products[1], g, goal, 30.0, {})
    assert missing_attr.attribute_matches == 1 and missing_attr.r_type == 1.0
    assert missing_attr.reward == pytest.approx((1 + 0 + 1) / 5)


def test_type_reward_levels() -> None:
    products, goal = shop()
    g = products[0]
    mug = get_reward(products[2], g, goal, 9.0, {})  # no shared title noun
    assert mug.title_score == 0 and mug.r_type == 0 and mug.reward == 0
    socks = get_reward(products[3], g, goal, 9.0, {})  # "trail" shared: 1/4 nouns > 0.2 → type 1
    assert socks.title_score == pytest.approx(1 / 4) and socks.r_type == 1.0
    belt = get_reward(products[4], g, goal, 9.0, {})  # "running": 1/4 nouns of goal
    assert belt.r_type == 1.0
    long_goal = build_products([record("B000000009", name="Alpha Beta Gamma Delta Epsilon Zeta Eta Theta Iota Kappa Running")], {})[0]
    weak = get_reward(products[4], long_goal, goal, 9.0, {})  # 1/11 < 0.1 → 0.1
    assert weak.title_score == pytest.approx(1 / 11) and weak.r_type == 0.1
    mid_goal = build_products([record("B000000010", name="Alpha Beta Gamma Delta Epsilon Zeta Eta Running", query="q",
                                      product_category="Z › Y")], {})[0]
    mid = get_reward(products[4], mid_goal, goal, 9.0, {})  # 1/8: no query/category match, ≤ 0.2 → 0.5
    assert mid.title_score == pytest.approx(1 / 8) and mid.r_type == 0.5


def test_option_matching_is_fuzzy_and_colour_normalised() -> None:
    assert normalize_chosen("navy blue") == "blue"  # first colour of the list
    assert normalize_chosen("rectangular") == "rectangular"  # whole words only
    assert option_matches({"color": "plain black"}, [("color", "black")]) == 1
    assert option_matches({"size": "x-large"}, [("size", "large")]) == 0
    assert option_matches({"size": "x-large"}, [("size", "x-large")]) == 1
    assert option_matches({"shape": "rectangular"}, [("item shape", "rectangular")]) == 1
    assert "running" in title_nouns("Acme Running Shoes for Men") and "for" not in title_nouns("Acme Running Shoes for Men")


# ----- env: pages and actions ------------------------------------------------------------
def test_pages_and_navigation(data: WebShopData) -> None:
    env = WebShopEnv(data)
    obs = env.reset(task_id=data.task_ids()[0])
    assert obs.observation.startswith("WebShop [SEP] Instruction: [SEP] ")
    assert obs.valid_actions == ["search[<keywords>]"]
    r = env.step("search[cable]")
    assert "Page 1 (Total results: " in r.observation and "[Next >]" in r.observation
    assert "click[Back to Search]" in r.valid_actions and "click[Next >]" in r.valid_actions
    r = env.step({"name": "click", "arguments": {"item": "next >"}})
    assert "Page 2 " in r.observation and "click[< Prev]" in r.valid_actions
    r = env.step("click[< Prev]")
    assert "Page 1 " in r.observation
    asin = r.valid_actions[2][len("click["):-1]
    r = env.step(f"click[{asin.lower()}]")
    assert "[Buy Now]" in r.observation and "[Description]" in r.observation
    r = env.step("click[Features]")
    assert r.valid_actions == ["click[Back to Search]", "click[< Prev]"]
    r = env.step("click[< Prev]")
    assert "[Buy Now]" in r.observation
    r = env.step("click[< Prev]")
    assert "Page 1 " in r.observation
    r = env.step("click[Back to Search]")
    assert r.valid_actions == ["search[<keywords>]"]


def test_bad_actions_change_nothing(data: WebShopData) -> None:
    env = WebShopEnv(data)
    env.reset(task_id=data.task_ids()[0])
    for action, message in [("click[Buy Now]", "nothing to click"), ("search[ ]", "needs keywords"),
                            ("dance", "use search[keywords]")]:
        r = env.step(action)
        assert message in r.observation and r.reward == 0 and not r.done
        assert env.state.page.value == "search"
    env.step("search[cable]")
    before = (env.state.page, env.state.page_num, env.state.results, env.last_observation)
    page_text = env.page()
    for action, message in [("click[B000NOTHERE]", "not clickable"), ("click[Frobnicate]", "not clickable"),
                            ("search[shoes]", "no search bar"), ("click[]", "needs the text")]:
        r = env.step(action)
        assert r.observation.startswith("Invalid action") and message in r.observation and r.observation.endswith(page_text)
        assert (env.state.page, env.state.page_num, env.state.results) == before[:3]
    # an item listed on the second results page is not clickable on the first
    assert len(env.state.results) > 10
    r = env.step(f"click[{data.products[env.state.results[10]].asin}]")
    assert "not clickable" in r.observation and env.state.page_num == 1 and env.state.item == -1


def test_option_clicks_select_and_buy_ends_episode(data: WebShopData) -> None:
    env = WebShopEnv(data)
    tid = next(t for t in data.task_ids() if len(data.goals[t].options) >= 1)
    env.reset(task_id=tid)
    goal = data.goals[tid]
    product = data.products[goal.product]
    env.step(f"search[{product.title}]")
    env.step(f"click[{product.asin}]")
    name, value = goal.options[0]
    r = env.step(f"click[ {value.upper().replace(' ', '  ')} ]")  # case and spacing do not matter
    assert f"[{value}] (selected)" in r.observation and env.state.chosen[name] == value
    r = env.step("click[Buy Now]")
    assert r.done and "success" in r.info and "Your score" in r.observation
    assert r.reward == pytest.approx(get_reward(product, product, goal, data.prices[goal.product], {name: value}).reward)


def test_expert_solves_every_builtin_goal(data: WebShopData) -> None:
    env = WebShopEnv(data)
    wins = 0
    for tid in data.task_ids():
        env.reset(task_id=tid)
        while not env.done:
            r = env.step(env.expert_action())
        wins += bool(r.info.get("success")) and r.reward == 1.0
    rate = wins / len(data.tasks)
    print(f"built-in expert success: {wins}/{len(data.tasks)} = {rate:.4f}")
    assert rate >= 0.99


def test_expert_recovers_from_a_wrong_page(data: WebShopData) -> None:
    env = WebShopEnv(data)
    tid = data.task_ids()[3]
    env.reset(task_id=tid)
    env.step("search[zzzz nothing matches]")
    env.step("click[Back to Search]")
    env.step("search[cable]")
    env.step(env.valid_actions()[-1])  # some item, probably not the goal
    steps = 0
    while not env.done and steps < 25:
        r = env.step(env.expert_action())
        steps += 1
    assert r.done and r.reward == 1.0


def test_session_state_holds_only_references(data: WebShopData) -> None:
    env = WebShopEnv(data)
    env.reset(task_id=data.task_ids()[0])
    env.step("search[cable]")
    assert 0 < len(env.state.results) <= 50 and all(type(i) is int for i in env.state.results)
    assert env.data is data and env.goal is data.goals[data.task_ids()[0]]  # shared, not copied


def test_sub_pages_show_product_text(data: WebShopData) -> None:
    env = WebShopEnv(data)
    env.reset(task_id=data.task_ids()[0])
    env.step("search[olive oil]")
    i = env.state.results[0]
    env.step(f"click[{data.products[i].asin}]")
    assert data.products[i].description in env.step("click[description]").observation
    env.step("click[< Prev]")
    features = env.step("click[Features]").observation
    assert all(b in features for b in data.products[i].bullet_points)
    env.step("click[< Prev]")
    assert "(no reviews)" in env.step("click[[Reviews]]").observation


def test_webshop_data_folder_layout_with_human_goal_file(tmp_path: Path) -> None:
    records, ins = builtin.generate()
    (tmp_path / "items_shuffle_1000.json").write_text(json.dumps(records))
    (tmp_path / "items_ins_v2_1000.json").write_text(json.dumps(ins))
    (tmp_path / "items_human_ins.json").write_text("{}")
    products, instructions = find_files(tmp_path)
    assert (products.name, instructions.name) == ("items_shuffle_1000.json", "items_ins_v2_1000.json")
