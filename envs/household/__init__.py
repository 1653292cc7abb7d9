"""Household environment: a pure-Python engine for ALFWorld (TextWorld PDDL) games.

Reads ALFWorld `game.tw-pddl` files (PDDL domain + problem, grammar, walkthrough), names
objects exactly like ALFWorld (`alarmclock 2`, `desk 1`), answers ALFWorld's commands with
its feedback sentences, and ships a deterministic generator of new games of the six task
types. ALFWorld: Shridhar et al., 2021 (MIT licence); ALFRED scenes: Shridhar et al., 2020.
"""
