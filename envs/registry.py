"""Names of the built-in environments and how to load their classes.

`trajgym serve NAME` and `gymnasium.make("trajgym/<Name>-v0")` both resolve through
this table. Adding an env means adding one line here.
"""

from __future__ import annotations

import importlib

from envs.base import Env

# name -> (import path "module:Class", gymnasium id)
ENVS: dict[str, tuple[str, str]] = {
    "webshop": ("envs.webshop.env:WebShopEnv", "trajgym/WebShop-v0"),
    "household": ("envs.household.env:HouseholdEnv", "trajgym/Household-v0"),
    "sql": ("envs.sql.env:SqlEnv", "trajgym/Sql-v0"),
    "qa": ("envs.qa.env:QaEnv", "trajgym/Qa-v0"),
}


class UnknownEnv(LookupError):
    pass


def load_class(spec: str) -> type[Env]:
    """Import `module:Class`; also accepts a registered env name."""
    if spec in ENVS:
        spec = ENVS[spec][0]
    if ":" not in spec:
        raise UnknownEnv(f"unknown env {spec!r}; built-in envs: {', '.join(ENVS)} (or give module:Class)")
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise UnknownEnv(f"cannot import env {spec!r}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Env)):
        raise UnknownEnv(f"{spec!r} is not an Env subclass")
    return cls


def available() -> list[str]:
    """Registered envs whose package exists in this installation."""
    return [name for name, (path, _) in ENVS.items() if importlib.util.find_spec(path.split(":")[0].rsplit(".", 1)[0]) is not None]
