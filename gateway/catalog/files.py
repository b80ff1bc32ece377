"""Which input fields hold files, and how to find their values in a body.

A field path is a tuple of names; ``"*"`` stands for every item of a list. Image fields take an
http(s) URL or an image ``data:`` URI; weights fields (LoRA paths) take an http(s) URL; model
fields (ControlNet, IP-Adapter, EasyControl weights) an http(s) URL or a repository path (fal
also resolves Hugging Face repos and built-in names there). Weights and model fields both name
weights that fal loads: a policy's path patterns apply to both.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Loc = tuple[str | int, ...]


class FileKind(enum.Enum):
    IMAGE = "image"
    WEIGHTS = "weights"
    MODEL = "model"

    @property
    def names_weights(self) -> bool:
        """Whether the field names weights that fal loads."""
        return self is not FileKind.IMAGE


@dataclass(frozen=True)
class FileField:
    path: tuple[str, ...]
    kind: FileKind = FileKind.IMAGE

    def values(self, body: Any) -> Iterator[tuple[Loc, Any]]:
        """Every value this field has in ``body``, with its location."""
        yield from _walk(body, self.path, ())

    def map_strings(self, body: Any, change: Callable[[str], str]) -> Any:
        """``body`` with every string value of this field passed through ``change``."""
        return _map(body, self.path, change)


def image(*path: str) -> FileField:
    return FileField(path, FileKind.IMAGE)


def weights(*path: str) -> FileField:
    return FileField(path, FileKind.WEIGHTS)


def model(*path: str) -> FileField:
    return FileField(path, FileKind.MODEL)


def _map(node: Any, path: tuple[str, ...], change: Callable[[str], str]) -> Any:
    if not path:
        return change(node) if isinstance(node, str) else node
    head, rest = path[0], path[1:]
    if head == "*":
        return [_map(item, rest, change) for item in node] if isinstance(node, list) else node
    if isinstance(node, dict) and head in node:
        return {**node, head: _map(node[head], rest, change)}
    return node


def _walk(node: Any, path: tuple[str, ...], loc: Loc) -> Iterator[tuple[Loc, Any]]:
    if not path:
        yield loc, node
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _walk(item, rest, (*loc, index))
    elif isinstance(node, dict) and node.get(head) is not None:
        yield from _walk(node[head], rest, (*loc, head))
