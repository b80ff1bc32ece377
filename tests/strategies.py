"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_trees(
    scalars: st.SearchStrategy[Any],
    field_names: list[str],
    *,
    width: int,
    max_leaves: int,
) -> st.SearchStrategy[Any]:
    """JSON values built from ``scalars``, whose objects mostly use ``field_names`` as keys."""
    keys = st.sampled_from(field_names) | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=width) | st.dictionaries(keys, children, max_size=width)
        ),
        max_leaves=max_leaves,
    )
