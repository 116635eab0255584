"""Text that no valid request can hold: NUL and unpaired UTF-16 surrogates.

PostgreSQL refuses NUL in ``text``/``jsonb`` and a lone surrogate cannot be encoded as UTF-8, so
such a value would fail deep inside the database driver. The API and the security routes check
every string they accept with these helpers first and answer 400 ``invalid_characters``.
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

from pydantic_core import PydanticCustomError

T = TypeVar("T")

INVALID_CHARACTERS: Final = "invalid_characters"
INVALID_CHARACTERS_MESSAGE: Final = "must not contain NUL or unpaired surrogate characters"
# JSON documents are walked with an explicit stack; this bounds the work on a hostile document.
TEXT_TREE_NODES_MAX: Final = 100_000
_FORBIDDEN_RE: Final = re.compile("[\x00\ud800-\udfff]")


def forbidden_text(value: str) -> bool:
    """True when ``value`` holds NUL or an unpaired surrogate."""
    return _FORBIDDEN_RE.search(value) is not None


def forbidden_in_tree(value: Any) -> bool:
    """True when any string (value or key) in a JSON-like tree holds a forbidden character.
    A tree with more than TEXT_TREE_NODES_MAX nodes counts as forbidden too."""
    stack = [value]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > TEXT_TREE_NODES_MAX:
            return True
        if isinstance(node, str):
            if _FORBIDDEN_RE.search(node) is not None:
                return True
        elif isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and _FORBIDDEN_RE.search(key) is not None:
                    return True
                stack.append(child)
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


def refuse_forbidden(value: T) -> T:
    """A pydantic after-validator (``AfterValidator(refuse_forbidden)``): a validation error of
    type ``invalid_characters`` when ``value`` holds NUL or an unpaired surrogate anywhere (keys
    of nested objects included), so free-form JSON such as ``metadata`` is covered as well as
    plain text fields; the API answers it with 400 ``invalid_characters``."""
    if forbidden_in_tree(value):
        raise PydanticCustomError(INVALID_CHARACTERS, INVALID_CHARACTERS_MESSAGE)
    return value
