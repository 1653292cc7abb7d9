"""Product records: WebShop's published catalog format → immutable `Product`s.

Reads both shapes WebShop's files come in: the processed records its engine
stores (`Title`, `Description`, `BulletPoints`, `pricing` as floats, `options`)
and the raw scraped ones (`name`, `full_description`, `small_description`,
`pricing` as a "$a$b" string, `customization_options`). As WebShop's
`load_products` does: asins that are 'nan' or longer than 10 characters and
duplicates are skipped, option values are lower-cased with '/' → ' | ' (and,
beyond WebShop, runs of whitespace such as no-break spaces become one space, so
that agents can type them), a
missing price becomes $100.0, and `Attributes` come from the instruction file
when it lists the asin.
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
    """WebShop's option normalisation, plus collapsing whitespace (no-break spaces occur in real values)."""
    return " ".join(raw.replace("/", " | ").lower().split())


def parse_options(record: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """`options` if the record has them, else derived from `customization_options`."""
    options = record.get("options")
    if isinstance(options, dict):
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


def to_product(record: Mapping[str, Any], ins: Mapping[str, Any] | None) -> Product:
    """One catalog record (+ its entry of the instruction file, if any) → `Product`."""
    asin = str(record["asin"])
    pricing = parse_pricing(record.get("pricing"))
    ins = ins or {}
    attributes = ins.get("attributes") if isinstance(ins.get("attributes"), list) else record.get("Attributes")
    instruction = ins.get("instruction") or None
    return Product(
        asin=asin,
        title=str(record.get("Title") or record.get("name") or ""),
        query=str(record.get("query", "")).lower().strip(),
        category=str(record.get("category", "")),
        product_category=str(record.get("product_category", "")),
        description=str(record.get("Description") or record.get("full_description") or ""),
        bullet_points=_strings(_as_list(record.get("BulletPoints", record.get("small_description")))),
        attributes=_strings(attributes) if attributes else ("DUMMY_ATTR",),
        options=parse_options(record),
        pricing=pricing,
        price_tag=str(record.get("Price") or price_tag(pricing)),
        rating=str(record.get("Rating") or "N.A."),
        reviews=_reviews(record.get("Reviews")),
        instruction=str(instruction) if instruction else None,
        instruction_attributes=_strings(ins.get("instruction_attributes") or []),
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
