"""Product records: WebShop's published catalog format → immutable `Product`s.

As WebShop's `load_products` (engine.py) reads them: asins that are 'nan' or
longer than 10 characters and repeated asins are skipped; the title is `name`,
the description `full_description`, the bullet points `small_description` (a
list, or one string made a one-item list); option values come from
`customization_options`, stripped, '/' → ' | ', lower-cased (inner no-break
spaces are kept, as WebShop keeps them); `pricing` is one price or a [low, high]
range ($100.0 when missing) and the price tag is rebuilt from it; `Attributes`
are the instruction file's `attributes` for the asin, else ['DUMMY_ATTR'].
Processed records (the fields WebShop's engine writes: `Title`, `Description`,
`BulletPoints`, `options`, `pricing` as floats) are read too, for the fields the
raw ones lack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True, slots=True)
class Review:
    score: str
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class Product:
    """One product as the shop shows and scores it (read-only, shared by all sessions)."""

    asin: str
    title: str
    query: str
    category: str
    product_category: str
    description: str
    bullet_points: tuple[str, ...]
    attributes: tuple[str, ...]
    options: Mapping[str, tuple[str, ...]]
    pricing: tuple[float, ...]
    price_tag: str
    rating: str
    reviews: tuple[Review, ...]
    instruction: str | None
    instruction_attributes: tuple[str, ...]


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def parse_pricing(raw: Any) -> tuple[float, ...]:
    """Price list as WebShop's loader leaves it: one price or a [low, high] range; default [100.0]."""
    prices: list[float] = []
    if isinstance(raw, str):
        for part in raw.split("$")[1:]:
            digits = re.sub(r"[^\d.]", "", part)
            try:
                prices.append(float(Decimal(digits)))
            except InvalidOperation:
                continue
    elif isinstance(raw, list):
        prices = [float(p) for p in raw if isinstance(p, (int, float)) and not isinstance(p, bool)]
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        prices = [float(raw)]
    if not prices:
        return (100.0,)
    return tuple(prices[:2])


def price_tag(pricing: tuple[float, ...]) -> str:
    return f"${pricing[0]}" if len(pricing) == 1 else f"${pricing[0]} to ${pricing[1]}"


def option_value(raw: str) -> str:
    """WebShop's option normalisation: strip, '/' → ' | ', lower-case (no-break spaces inside are kept)."""
    return raw.strip().replace("/", " | ").lower()


def parse_options(record: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """From `customization_options` (WebShop's source), else from a processed record's `options`."""
    if "customization_options" not in record:
        options = record.get("options")
        if not isinstance(options, dict):
            return {}
        return {str(k).lower(): tuple(option_value(str(v)) for v in vals) for k, vals in options.items() if isinstance(vals, list)}
    out: dict[str, tuple[str, ...]] = {}
    custom = record.get("customization_options")
    if isinstance(custom, dict):
        for name, contents in custom.items():
            if not isinstance(contents, list):
                continue
            out[str(name).lower()] = tuple(option_value(str(c.get("value", ""))) for c in contents if isinstance(c, dict))
    return out


def _reviews(raw: Any) -> tuple[Review, ...]:
    out = []
    for r in _as_list(raw):
        if isinstance(r, dict):
            out.append(Review(score=str(r.get("score", r.get("stars", ""))), title=str(r.get("title", "")),
                              body=str(r.get("body", r.get("review", "")))))
    return tuple(out)


def _strings(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in values if v is not None)


def _first(record: Mapping[str, Any], *keys: str) -> Any:
    """The first of `keys` that the record has (WebShop's raw field first, then the processed one)."""
    for key in keys:
        if key in record and record[key] is not None:
            return record[key]
    return None


def bullet_points(record: Mapping[str, Any]) -> tuple[str, ...]:
    """`small_description` as WebShop keeps it: a list as is, a single string as a one-item list."""
    raw = _first(record, "small_description", "BulletPoints")
    if raw is None:
        return ()
    return _strings(raw) if isinstance(raw, list) else (str(raw),)


def attributes(ins: Mapping[str, Any] | None) -> tuple[str, ...]:
    """WebShop: the instruction file's `attributes` for the asin when it has that key, else ['DUMMY_ATTR']."""
    if ins is None or "attributes" not in ins:
        return ("DUMMY_ATTR",)
    raw = ins["attributes"]
    return _strings(raw) if isinstance(raw, list) else (str(raw),)


def to_product(record: Mapping[str, Any], ins: Mapping[str, Any] | None) -> Product:
    """One catalog record (+ its entry of the instruction file, if any) → `Product`."""
    asin = str(record["asin"])
    pricing = parse_pricing(record.get("pricing"))
    instruction = (ins or {}).get("instruction")
    title = _first(record, "name", "Title")
    description = _first(record, "full_description", "Description")
    return Product(
        asin=asin,
        title="" if title is None else str(title),
        query=str(record.get("query", "")).lower().strip(),
        category=str(record.get("category", "")),
        product_category=str(record.get("product_category", "")),
        description="" if description is None else str(description),
        bullet_points=bullet_points(record),
        attributes=attributes(ins),
        options=parse_options(record),
        pricing=pricing,
        price_tag=price_tag(pricing),
        rating=str(record.get("Rating") or "N.A."),
        reviews=_reviews(record.get("Reviews")),
        instruction=None if instruction is None else str(instruction),
        instruction_attributes=_strings((ins or {}).get("instruction_attributes") or []),
    )


def build_products(records: Iterable[Mapping[str, Any]], instructions: Mapping[str, Any]) -> list[Product]:
    """All valid, de-duplicated products, in file order."""
    seen: set[str] = set()
    products: list[Product] = []
    for record in records:
        if not isinstance(record, Mapping) or "asin" not in record:
            continue
        asin = str(record["asin"])
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        entry = instructions.get(asin)
        products.append(to_product(record, entry if isinstance(entry, Mapping) else None))
    return products
