"""The built-in catalog: a small deterministic shop in WebShop's published JSON format.

`generate()` returns (product records, instruction file) exactly as
`items_*.json` / `items_ins_v2*.json` hold them, so the built-in shop goes
through the same loader as real data. 200 products over WebShop's five
categories; about two thirds carry a synthetic instruction. Nothing here is
random at run time: a seeded generator makes the same files on every machine.
Write them out with ``python -m envs.webshop.builtin OUT_DIR``.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

N_PRODUCTS = 200
SEED = 20220101


@dataclass(frozen=True)
class Kind:
    category: str
    query: str
    path: str
    noun: str
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    price: tuple[float, float]


_SIZES = ("small", "medium", "large", "x-large")
_COLORS = ("black", "white", "navy blue", "red", "heather grey", "olive green")
KINDS: tuple[Kind, ...] = (
    Kind("fashion", "men's t-shirts", "Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts", "T-Shirt",
         ("machine wash", "cotton spandex", "short sleeve", "slim fit", "relaxed fit"), {"size": _SIZES, "color": _COLORS}, (9, 35)),
    Kind("fashion", "women's sneakers", "Clothing, Shoes & Jewelry › Women › Shoes › Fashion Sneakers", "Sneakers",
         ("rubber sole", "non slip", "memory foam", "lace up", "arch support"), {"size": ("6", "7", "8", "9"), "color": ("white", "pink", "black")}, (25, 90)),
    Kind("fashion", "women's jeans", "Clothing, Shoes & Jewelry › Women › Clothing › Jeans", "Jeans",
         ("high waist", "stretch fabric", "button closure", "machine wash"), {"size": ("26", "28", "30"), "color": ("light wash", "dark wash")}, (20, 70)),
    Kind("beauty", "shampoo", "Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos", "Shampoo",
         ("sulfate free", "paraben free", "dry hair", "argan oil", "natural ingredients"), {"size": ("8 fl oz", "16 fl oz")}, (6, 30)),
    Kind("beauty", "lip balm", "Beauty & Personal Care › Skin Care › Lip Care › Balms & Moisturizers", "Lip Balm",
         ("shea butter", "long lasting", "cruelty free", "natural ingredients"), {"flavor": ("mint", "vanilla", "cherry")}, (3, 15)),
    Kind("beauty", "face serum", "Beauty & Personal Care › Skin Care › Face › Serums", "Face Serum",
         ("hyaluronic acid", "vitamin c", "fine lines", "dark circles", "sensitive skin"), {}, (12, 60)),
    Kind("electronics", "wireless earbuds", "Electronics › Headphones, Earbuds & Accessories › Earbuds", "Wireless Earbuds",
         ("noise cancelling", "long battery life", "bluetooth 5.0", "water resistant", "charging case"), {"color": ("black", "white", "blue")}, (19, 150)),
    Kind("electronics", "usb c cables", "Electronics › Computers & Accessories › Cables › USB Cables", "USB C Cable",
         ("fast charging", "braided nylon", "high speed", "data transfer"), {"size": ("3 ft", "6 ft", "10 ft"), "color": ("black", "grey")}, (5, 20)),
    Kind("electronics", "hdmi cables", "Electronics › Television & Video › Accessories › Cables › HDMI Cables", "HDMI Cable",
         ("4k ultra hd", "high speed", "gold plated", "ethernet"), {"size": ("6 ft", "15 ft")}, (6, 30)),
    Kind("garden", "throw pillow covers", "Home & Kitchen › Bedding › Decorative Pillows › Throw Pillow Covers", "Throw Pillow Covers",
         ("living room", "machine washable", "hidden zipper", "super soft"), {"size": ("18x18 inch", "20x20 inch"), "color": ("beige", "sage green", "rust")}, (10, 35)),
    Kind("garden", "console tables", "Home & Kitchen › Furniture › Living Room Furniture › Tables › Sofa & Console Tables", "Console Table",
         ("solid wood", "living room", "easy assembly", "storage space"), {"color": ("walnut", "white", "espresso")}, (60, 400)),
    Kind("garden", "led string lights", "Tools & Home Improvement › Lighting & Ceiling Fans › String Lights", "LED String Lights",
         ("battery operated", "remote control", "waterproof", "warm white"), {"size": ("33 ft", "66 ft")}, (8, 40)),
    Kind("grocery", "green tea", "Grocery & Gourmet Food › Beverages › Coffee, Tea & Cocoa › Tea › Green Tea", "Green Tea",
         ("caffeine free", "non gmo", "usda organic", "gluten free"), {"flavor": ("jasmine", "mint", "original"), "size": ("20 count", "100 count")}, (4, 25)),
    Kind("grocery", "protein bars", "Grocery & Gourmet Food › Snack Foods › Bars › Protein Bars", "Protein Bars",
         ("low sugar", "gluten free", "plant based", "high protein"), {"flavor": ("chocolate", "peanut butter", "almond"), "size": ("12 count",)}, (12, 40)),
    Kind("grocery", "olive oil", "Grocery & Gourmet Food › Pantry Staples › Oils › Olive Oil", "Olive Oil",
         ("extra virgin", "cold pressed", "non gmo", "glass bottle"), {"size": ("500 ml", "1 liter")}, (8, 45)),
)
BRANDS = ("Acorn", "Brightly", "Cobalt", "Dune", "Evergreen", "Fable", "Granite", "Harbor", "Iris", "Juniper", "Kestrel",
          "Lumen", "Maple", "Nimbus", "Orchard", "Pebble", "Quill", "Rowan", "Sable", "Tundra")
STYLES = ("Classic", "Everyday", "Premium", "Essential", "Deluxe", "Signature", "Studio", "Travel")


def _asin(i: int, rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "B0" + "".join(rng.choice(alphabet) for _ in range(7)) + alphabet[i % len(alphabet)]


def _record(i: int, kind: Kind, rng: random.Random) -> dict[str, Any]:
    brand, style = rng.choice(BRANDS), rng.choice(STYLES)
    attrs = rng.sample(kind.attributes, k=min(len(kind.attributes), rng.randint(2, 4)))
    title = f"{brand} {style} {kind.noun}, {attrs[0].title()}"
    options = {name: list(rng.sample(values, k=rng.randint(1, len(values)))) for name, values in kind.options.items()}
    low = round(rng.uniform(*kind.price), 2)
    pricing = [low] if rng.random() < 0.8 or not options else [low, round(low * rng.uniform(1.1, 1.6), 2)]
    bullets = [f"{a.capitalize()}: our {kind.noun.lower()} is made for {a}." for a in attrs]
    description = f"The {brand} {style.lower()} {kind.noun.lower()} — {', '.join(attrs)}."
    custom = {name.title(): [{"value": v.title(), "is_selected": j == 0} for j, v in enumerate(vals)] for name, vals in options.items()}
    return {
        "asin": _asin(i, rng), "name": title, "Title": title, "full_description": description, "Description": description,
        "pricing": pricing, "Price": f"${pricing[0]}" if len(pricing) == 1 else f"${pricing[0]} to ${pricing[1]}",
        "images": [], "MainImage": "", "product_category": kind.path, "category": kind.category, "query": kind.query,
        "page": 1 + i // 16, "average_rating": "", "Rating": "N.A.", "Reviews": [], "small_description": bullets,
        "BulletPoints": bullets, "customization_options": custom or "", "options": options, "option_to_image": {},
        "Attributes": attrs,
    }


def _instruction(record: dict[str, Any], kind: Kind, rng: random.Random) -> dict[str, Any]:
    attrs = record["Attributes"]
    entry: dict[str, Any] = {"attributes": list(attrs)}
    if rng.random() < 0.65:
        chosen = rng.sample(attrs, k=rng.randint(1, min(2, len(attrs))))
        lead = rng.choice(("i am looking for", "i need", "find me", "i want"))
        entry["instruction"] = f"{lead} {kind.query} that are {' and '.join(chosen)}"
        entry["instruction_attributes"] = chosen
    return entry


def generate() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(records, instructions) in WebShop's published format."""
    rng = random.Random(SEED)
    records, ins = [], {}
    for i in range(N_PRODUCTS):
        kind = KINDS[i % len(KINDS)]
        record = _record(i, kind, rng)
        records.append(record)
        ins[record["asin"]] = _instruction(record, kind, rng)
    return records, ins


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m envs.webshop.builtin OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    records, ins = generate()
    (out / "items_builtin_products.json").write_text(json.dumps(records, indent=1))
    (out / "items_ins_v2_builtin.json").write_text(json.dumps(ins, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
