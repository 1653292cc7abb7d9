"""Colour normalisation of option values, as WebShop's `normalize_color` does it (and a whole-word variant).

WebShop replaces an option value by the first word of its colour list (in list
order, not in order of appearance) that the value contains, else leaves it as is.
Its test is `colour in value`:

* for a purchased value (a string) that is a substring test, so a colour is
  also found inside a longer token: 'r.brown2070' -> 'brown', 'standard' -> 'tan',
  'rectangular' -> 'tan', 'b17-army\\xa0green' -> 'green';
* for a goal option, which WebShop passes as the (name, value) tuple, it is tuple
  membership: only a value (or name) that *equals* a colour word is replaced.

`normalize_color` reproduces both (the official grading). `normalize_color_words`
is the friendlier variant of `grading=lenient`: a colour counts only as a whole
word (not inside a longer run of letters or digits).
"""

from __future__ import annotations

import re

# WebShop's COLOR_SET (web_agent_site/engine/normalize.py), in its order: the first hit wins.
COLOR_SET: tuple[str, ...] = tuple("""
alabaster apricot aqua ash asphalt azure banana beige black blue blush bordeaux bronze brown burgundy camel camo
caramel champagne charcoal cheetah chestnut chocolate christmas coffee cognac copper coral cranberry cream crystal
dark denim eggplant elephant espresso fuchsia gold granite grape graphite grass gray green grey heather indigo ivory
ivy khaki lavender lemon leopard light lilac lime magenta maroon mauve merlot midnight mint mocha multicolor mushroom
mustard natural navy nude olive orange peach pewter pink plum purple rainbow red rose royal rust sand sapphire
seashell silver skull slate steel stone stonewash sunflower tan taupe teal tiger turquoise violet walnut wheat white
wine yellow
""".split())

_WORD_PATTERNS = tuple((c, re.compile(rf"(?<![^\W_]){re.escape(c)}(?![^\W_])")) for c in COLOR_SET)


def normalize_color(option: str | tuple[str, ...]) -> str | tuple[str, ...]:
    """WebShop's `normalize_color`: substring test on a string, membership test on a tuple."""
    for color in COLOR_SET:
        if color in option:
            return color
    return option


def normalize_color_words(value: str) -> str:
    """The first colour of the list that `value` contains as a whole word (lower-case), else `value`."""
    lowered = value.lower()
    for color, pattern in _WORD_PATTERNS:
        if pattern.search(lowered):
            return color
    return value
