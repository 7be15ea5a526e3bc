"""Commands the channels and the worker add to `hotline` through the `hotline.commands` entry-point
group, so the core never imports them."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

import click


@lru_cache(maxsize=1)
def plugin_commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for ep in entry_points(group="hotline.commands"):
        loaded = ep.load()
        for cmd in (
            loaded() if callable(loaded) and not isinstance(loaded, click.Command) else [loaded]
        ):
            found[cmd.name] = cmd
    return found
