"""Hypothesis strategies for bad input: the platforms' recorded payloads mutated, arbitrary JSON, text and bytes.

A mutated payload keeps the real shape (so the parser reaches deep branches) while a few nodes anywhere in the
tree become arbitrary JSON values (NUL, lone surrogates, RTL and emoji text, huge or negative numbers, wrong
types, deep nesting) or disappear.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"

#: Text that tends to break storage and rendering: NUL, lone surrogates, RTL and bidi controls, emoji, huge runs.
NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "مرحبا أفا، كيف حالك؟",
    "שלום \u202eabc\u202c",
    "👩🏽\u200d💻🔥" * 20,
    "٢٥",
    "\u0000\ufeff\u200b",
    "x" * 5000,
    "😀" * 4097,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00%ff",
]
_TEXT = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=60))
_INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, 10**40]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, st.floats(allow_nan=False, allow_infinity=False), _TEXT)
#: Any JSON value (small trees).
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(_TEXT, st.sampled_from(["id", "text"])), children, max_size=4),
    ),
    max_leaves=12,
)


def load_payloads(channel: str) -> list[dict[str, Any]]:
    """Every recorded payload of `channel` (tests/payloads/<channel>/*.json)."""
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted((PAYLOADS / channel).glob("*.json"))]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node of a JSON tree (the root is `()`)."""
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_paths(child, (*prefix, index)))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, samples: Sequence[dict[str, Any]]) -> Any:
    """A recorded payload with one to three nodes replaced by arbitrary JSON, deleted, or nested deeper."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(list(samples))))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(st.sampled_from(["replace", "replace", "delete", "wrap"]))
        if not path:
            doc = draw(JSON_VALUES) if action != "wrap" else [doc]
            continue
        parent = _parent(doc, path)
        if action == "delete":
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = {"nested": [parent[path[-1]]]}
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return doc


def _dumps(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \\udXXX escapes: what a platform (or an attacker) can send.
    return json.dumps(value).encode()


def bodies(samples: Sequence[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Webhook bodies: mostly mutated real payloads, also arbitrary JSON, raw bytes and deep nesting."""
    return st.one_of(
        mutated(samples).map(_dumps),
        mutated(samples).map(_dumps),
        mutated(samples).map(_dumps),
        JSON_VALUES.map(_dumps),
        st.binary(max_size=200),
        st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    )


#: Form field names the portal's forms read, and a few it does not.
FIELD_NAMES = ["email", "password", "csrf_token", "next", "mode", "client_id", "plan", "text", "choice", "confirm", "x"]


def form_fields(csrf_token: str) -> st.SearchStrategy[dict[str, str]]:
    """Form fields: known names with arbitrary values, the right CSRF token most of the time."""
    fields = st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10)), _TEXT, max_size=6)
    token = st.one_of(st.just(csrf_token), st.just(csrf_token), _TEXT)
    return st.tuples(fields, token).map(lambda pair: pair[0] | {"csrf_token": pair[1]})
