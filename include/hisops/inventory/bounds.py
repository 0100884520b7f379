"""Bounds on the inventory YAML, checked on the parser's event stream before anything is built.

PyYAML's parser is iterative, its composer and constructor are recursive and expand aliases
into shared objects that later code (validation, secret scans, JSON) walks as if they were
copies. So the events are walked first, with:

- a nesting limit (100,000 ``[`` would be a RecursionError in the composer),
- a per-collection item limit (a list of millions of items),
- an expanded-size limit: each anchor's subtree size is remembered and every alias adds it, so
  a "billion laughs" file is refused after a few hundred events, not after gigabytes.

The file size limit is checked before parsing (see `loader`). Each problem is one
``(where, problem)`` pair, where = 'line L, column C' or '(file)'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_ITEMS = 10_000  # items of one list or entries of one mapping
MAX_NODES = 100_000  # scalars and collections after alias expansion


class BoundsExceeded(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def _at(event: Any) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"


@dataclass
class _Frame:
    anchor: str | None
    start: Any
    nodes: int = 1  # the collection itself
    items: int = 0  # child nodes (a mapping counts keys and values)
    mapping: bool = False


@dataclass
class _Walk:
    anchors: dict[str, int] = field(default_factory=dict)
    stack: list[_Frame] = field(default_factory=list)
    total: int = 0

    def count(self, nodes: int) -> None:
        self.total += nodes
        if self.total > MAX_NODES:
            raise BoundsExceeded(
                "(file)",
                f"YAML aliases expand to more than {MAX_NODES} nodes "
                "(alias bomb?); write the values out",
            )

    def child(self, nodes: int) -> None:
        if not self.stack:
            return
        top = self.stack[-1]
        top.nodes += nodes
        top.items += 1
        if top.items > MAX_ITEMS * (2 if top.mapping else 1):
            raise BoundsExceeded(
                _at(top.start), f"a YAML list or mapping with more than {MAX_ITEMS} items"
            )

    def event(self, event: Any) -> None:
        if isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
            nodes = self.anchors.get(event.anchor, 1) if isinstance(event, yaml.AliasEvent) else 1
            if isinstance(event, yaml.ScalarEvent) and event.anchor:
                self.anchors[event.anchor] = 1
            self.count(nodes)
            self.child(nodes)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise BoundsExceeded(_at(event), f"YAML nested deeper than {MAX_DEPTH} levels")
            self.count(1)
            self.stack.append(
                _Frame(event.anchor, event, mapping=isinstance(event, yaml.MappingStartEvent))
            )
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            frame = self.stack.pop()
            if frame.anchor:
                self.anchors[frame.anchor] = frame.nodes
            self.child(frame.nodes)


def check_events(text: str, loader: type[yaml.SafeLoader]) -> None:
    """Raise BoundsExceeded at the first limit the document passes
    (yaml.YAMLError on bad syntax)."""
    walk = _Walk()
    for event in yaml.parse(text, Loader=loader):
        walk.event(event)
