"""ALFWorld's naming of PDDL ids: `Drawer_bar__plus_02_dot_99_bar_...` → `drawer 3`.

Per base name (text before the first `_bar_`, plus `basin` for sink/bathtub basins) the
instances are numbered 1..n, handed out from the highest number down in sorted id order —
the scheme of ALFWorld's demangler, so walkthroughs and prompts refer to the same things.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def base_name(entity_id: str) -> str | None:
    head, sep, _ = entity_id.partition("_bar_")
    if not sep:
        return None
    return head + "basin" if "basin" in entity_id else head


def alfworld_names(entity_ids: Iterable[str]) -> dict[str, str]:
    """Map every id with a `_bar_` part to its ALFWorld display name."""
    ids = sorted(set(entity_ids))
    counts: Counter[str] = Counter(b for b in map(base_name, ids) if b is not None)
    remaining = dict(counts)
    names: dict[str, str] = {}
    for entity_id in ids:
        base = base_name(entity_id)
        if base is None:
            continue
        names[entity_id] = f"{base} {remaining[base]}"
        remaining[base] -= 1
    return names


def mangle(text: str) -> str:
    """The inverse direction, for the generator: `Mug|+01.20|...` → `Mug_bar__plus_01_dot_20_bar_...`."""
    return (text.replace("|", "_bar_").replace("-", "_minus_").replace("+", "_plus_")
            .replace(".", "_dot_").replace(",", "_comma_"))
