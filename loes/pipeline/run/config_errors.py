"""Pydantic validation errors of the settings as sentences a user can act on: the dotted key,
what is allowed (a range from the field's constraints, the valid keys of a section) and the
value given; and what a setting allows in words, for ``loes settings``."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BeforeValidator

__all__ = ["allowed_values", "table_settings_without_source", "validation_message"]


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
    if kind == "loes_setting":  # a section's own check (PydanticCustomError), already a sentence
        return error["msg"]
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


def table_settings_without_source(data: Any) -> str | None:
    """Why the ``data`` section (a :class:`~loes.pipeline.run.config.DataConfig`) is refused
    when it sets how to read a table (``images_dir``, ``format``, a ``suffix`` other than
    ``T1w``) but names no table (``source``), or ``None`` when it is fine: without a source
    loes would train on the synthetic cohort and ignore those settings."""
    given = [f"data.{k}" for k in ("images_dir", "format") if getattr(data, k) is not None]
    given += ["data.suffix"] if data.suffix != "T1w" else []
    if data.source is not None or not given:
        return None
    names = " and ".join(given)
    return (
        f"{names} {'is' if len(given) == 1 else 'are'} set but data.source is not, and "
        "without data.source loes trains on the built-in synthetic cohort: set data.source to "
        "your table (a manifest CSV/TSV, the lab's CSV or a BIDS folder; `loes cv TABLE` on the "
        f"command line; see configs/own-data.yaml), or remove {names} to use the synthetic "
        "cohort."
    )


def allowed_values(field: Any) -> str:
    """What a setting (a pydantic ``FieldInfo``) allows, in words: ``one of 'mse', 'l1',
    'huber'``, ``a whole number, positive``, ``3 numbers, each positive``, ``true or false``,
    ``text``, with ``or null`` when it may be empty."""
    return _allowed(field.annotation, list(field.metadata))


def _allowed(annotation: Any, metadata: list) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _allowed(args[0], [*metadata, *args[1:]])
    if origin is typing.Literal:
        values = ", ".join(
            "true" if a is True else "false" if a is False else repr(a) for a in args
        )
        return f"one of {values}"
    if type(None) in args:  # X | None
        options = [a for a in args if a is not type(None)]
        return f"{_allowed(options[0] if len(options) == 1 else options, metadata)} or null"
    if origin is tuple:
        inner = {_allowed(a, []) for a in args}
        each = inner.pop() if len(inner) == 1 else "values"
        kinds = {"a number": "numbers", "a whole number": "whole numbers"}
        text = f"{len(args)} {kinds.get(each.split(',')[0], 'values')}"
        if "," in each:
            text += ", each " + each.split(", ", 1)[1]
        if any(isinstance(m, BeforeValidator) for m in metadata):
            text += ", or one number for all"
        return text
    bounds = _range_text(_constraints_of(metadata)) if _constraints_of(metadata) else ""
    steps = [m.multiple_of for m in metadata if getattr(m, "multiple_of", None) is not None]
    bounds += f" in steps of {steps[0]:g}" if steps else ""
    name = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )
    return f"{name}, {bounds}" if bounds else name


def _constraints_of(metadata: list) -> list:
    """The bound constraints among ``metadata`` (``Gt``, ``Ge``, ... or ``FieldInfo``s)."""
    found = []
    for item in metadata:
        found += getattr(item, "metadata", [])  # a FieldInfo inside Annotated
        if any(getattr(item, b, None) is not None for b in ("gt", "ge", "lt", "le")):
            found.append(item)
    return found
