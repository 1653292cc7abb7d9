"""Loading the shop: published files or the built-in catalog → `WebShopData` (shared, read-only).

A data directory laid out like WebShop's `data/` holds one product file
`items_*.json` (a JSON list of product records, e.g. `items_shuffle_1000.json`;
names containing `_ins` are instruction files, not products)
and one instruction file `items_ins_v2*.json` (asin → attributes, instruction,
instruction_attributes). Files are looked up only directly inside the
directory, through `envs.base.DataDir` (paths that resolve outside it are refused).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from envs.base import DataDir, DataDirError, EnvData, as_data_dir
from envs.types import TaskSpec
from envs.webshop import builtin
from envs.webshop.catalog import Product, build_products
from envs.webshop.goals import SHUFFLE_SEED, Goal, purchase_prices, shuffled_with_splits, synthetic_goals
from envs.webshop.nouns import NounTagger, TitleNouns, default_tagger
from envs.webshop.search import SearchIndex


def find_files(data_dir: str | Path | DataDir) -> tuple[Path, Path]:
    """(product file, instruction file) inside `data_dir`."""
    folder = as_data_dir(data_dir)
    ins = sorted(folder.root.glob("items_ins_v2*.json"))
    # WebShop's data folder also holds items_human_ins.json (human goals): not a product file.
    products = sorted(p for p in folder.root.glob("items_*.json") if "_ins" not in p.name)
    if not ins or not products:
        raise DataDirError(f"{folder} needs an items_*.json product file and an items_ins_v2*.json instruction file")
    if len(products) > 1:
        raise DataDirError(f"{folder} has several product files ({', '.join(p.name for p in products)}); keep one")
    return folder.file(products[0].name), folder.file(ins[0].name)


def read_files(data_dir: str | Path | DataDir) -> tuple[list[Any], dict[str, Any]]:
    product_path, ins_path = find_files(data_dir)
    records = json.loads(product_path.read_text(encoding="utf-8"))
    ins = json.loads(ins_path.read_text(encoding="utf-8"))
    if not isinstance(records, list) or not isinstance(ins, dict):
        raise DataDirError("the product file must hold a JSON list and the instruction file a JSON object")
    return records, ins


EAGER_NOUNS = 20_000


class WebShopData(EnvData):
    """Catalog, BM25 index, purchase prices, title nouns and goals; one instance per service."""

    def __init__(self, products: Sequence[Product], source: str, tagger: NounTagger | None = None) -> None:
        self.source = source
        self.products: tuple[Product, ...] = tuple(products)
        self.by_asin: dict[str, int] = {p.asin.lower(): i for i, p in enumerate(self.products)}
        # The type reward's title nouns: tagged here for a catalog of WebShop's usual size, else on first use.
        self.tagger: NounTagger = tagger or default_tagger()
        self.nouns = TitleNouns([p.title for p in self.products], self.tagger)
        if len(self.products) <= EAGER_NOUNS:
            self.nouns.warm(range(len(self.products)))
        rng = random.Random(SHUFFLE_SEED)
        self.prices: tuple[float, ...] = tuple(purchase_prices(self.products, rng))
        ordered = shuffled_with_splits(synthetic_goals(self.products, self.prices, rng))
        self.index = SearchIndex(self.products)
        self.goals: dict[str, Goal] = {}
        tasks = []
        # Task metadata is public (GET /v1/tasks): it names no product or option, so it cannot leak the answer.
        for i, (goal, split) in enumerate(ordered):
            task_id = f"webshop-{i}"
            self.goals[task_id] = goal
            p = self.products[goal.product]
            tasks.append(TaskSpec(task_id=task_id, split=split, instruction=goal.instruction,
                                  meta={"category": p.category, "price_upper": goal.price_upper}))
        super().__init__(tasks)


def from_records(records: Sequence[Any], ins: Mapping[str, Any], source: str,
                 tagger: NounTagger | None = None) -> WebShopData:
    return WebShopData(build_products(records, ins), source, tagger)


def load_data(data_dir: str | Path | DataDir | None = None, tagger: NounTagger | None = None) -> WebShopData:
    """Real files from `data_dir`, or the built-in catalog when it is None."""
    if data_dir is None:
        records, ins = builtin.generate()
        return from_records(records, ins, "builtin", tagger)
    folder = as_data_dir(data_dir)
    records, ins = read_files(folder)
    return from_records(records, ins, str(folder), tagger)
