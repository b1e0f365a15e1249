"""Pydantic validation errors of the settings as sentences a user can act on: the dotted key,
what is allowed (a range from the field's constraints, the valid keys of a section) and the
value given."""

from __future__ import annotations

import typing
from typing import Any

__all__ = ["validation_message"]


def _field(root: Any, keys: list[str]) -> Any:
    """The pydantic ``FieldInfo`` at dotted ``keys`` (``["training", "epochs"]``) of ``root``."""
    model: Any = root
    info = None
    for key in keys:
        info = model.model_fields[key]
        model = info.annotation
    return info


def validation_message(error: dict, root: Any) -> str:
    """One pydantic error of validating the model ``root`` (a :class:`pydantic.BaseModel` class)
    as a sentence that names the key and what is allowed."""
    names = [part for part in error["loc"] if isinstance(part, str)]
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx", {})
    if kind == "extra_forbidden":
        *parents, unknown = names
        section = _field(root, parents).annotation if parents else root
        valid = ", ".join(sorted(section.model_fields))
        if not parents:
            return f"unknown key {unknown!r}; valid top-level keys: {valid}."
        return f"unknown key {'.'.join(names)}; valid keys there: {valid}."
    key = ".".join(names) + "".join(f"[{p}]" for p in error["loc"] if isinstance(p, int))
    if kind in {"int_parsing", "float_parsing", "int_type", "float_type"}:
        return f"{key} must be a number, got {value!r}."
    if kind == "int_from_float":
        return f"{key} must be a whole number, got {value!r}."
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"{key} must be a section of key: value settings, got {value!r}."
    if kind in {"bool_parsing", "bool_type"}:
        return f"{key} must be true or false, got {value!r}."
    if kind == "literal_error":
        expected = str(ctx.get("expected")).replace("False", "false").replace("True", "true")
        return f"{key} must be one of {expected}, got {value!r}."
    if kind in {"too_short", "too_long", "tuple_type", "missing"}:
        n = len(_field(root, names).annotation.__args__)
        return f"{'.'.join(names)} must be a list of {n} values, got {value!r}."
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        allowed = _range_text(_constraints(_field(root, names)) or [ctx])
        return f"{key} must be {allowed}, got {value!r}."
    return f"{key}: {error['msg']}, got {value!r}."


def _constraints(field: Any) -> list:
    """The bound constraints of a field, also when it is optional (``Probability | None``)."""
    found = list(field.metadata)
    for option in typing.get_args(field.annotation):
        for extra in typing.get_args(option)[1:]:  # Annotated[float, FieldInfo(ge=0, le=1)]
            found += getattr(extra, "metadata", [])
    return found


def _range_text(constraints: list) -> str:
    """``positive``, ``between 0 and 1`` and the like, from a field's constraints (objects
    with ``gt``/``ge``/``lt``/``le`` attributes, or pydantic's error context dict)."""
    bounds = {}
    for item in constraints:
        for name in ("gt", "ge", "lt", "le"):
            value = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
            if value is not None:
                bounds[name] = value
    if bounds == {"gt": 0}:
        return "positive"
    if bounds == {"ge": 0}:
        return "non-negative"
    low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
    if low is not None and high is not None:
        exclusive = " (exclusive)" if "gt" in bounds and "lt" in bounds else ""
        return f"between {low:g} and {high:g}{exclusive}"
    if low is not None:
        return f"{'above' if 'gt' in bounds else 'at least'} {low:g}"
    return f"{'below' if 'lt' in bounds else 'at most'} {high:g}"
