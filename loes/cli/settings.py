"""``loes settings``: every setting of ``loes cv`` with its default, unit, allowed values and
meaning, read from the configuration model itself (:mod:`loes.pipeline.run.config`)."""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from typing import Any

__all__ = ["register", "run", "settings_rows"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "settings",
        help="list every setting with its default, unit and allowed values",
        description="List every setting of `loes cv` (and `loes slurm`): its dotted name, "
        "default (the CPU main job, configs/cpu.yaml), unit, allowed values and meaning. "
        "Set one in a YAML file given with --config, or as key=value on the command line.",
        epilog="examples:\n  loes settings\n  loes settings training data.source\n"
        "  loes settings --markdown > settings.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="SECTION|KEY",
        help="only these sections (training) or settings (data.source)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print one markdown table instead of text"
    )
    parser.set_defaults(run=run)


def settings_rows() -> list[dict[str, str]]:
    """One row per setting of :class:`loes.pipeline.run.config.Config`, in declaration order:
    ``name`` (dotted), ``default`` (as YAML/JSON writes it), ``unit`` (``""`` when none),
    ``allowed`` (in words) and ``description`` (the field's docstring, on one line)."""
    from loes.pipeline.run.config import Config
    from loes.pipeline.run.config_errors import allowed_values

    rows = []

    def walk(model: Any, prefix: str) -> None:
        for name, field in model.model_fields.items():
            if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields"):
                walk(field.annotation, f"{prefix}{name}.")
                continue
            default = field.get_default(call_default_factory=True)
            rows.append(
                {
                    "name": prefix + name,
                    "default": json.dumps(list(default) if isinstance(default, tuple) else default),
                    "unit": (field.json_schema_extra or {}).get("unit", ""),
                    "allowed": allowed_values(field),
                    "description": _plain(field.description or ""),
                }
            )

    walk(Config, "")
    return rows


def _plain(docstring: str) -> str:
    """A field's docstring on one line, its Sphinx roles and double backticks as plain
    backticks (``:func:`loes.x``` and ````x```` become ```loes.x``` and ```x```)."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", " ".join(docstring.split()))
    return text.replace("``", "`")


def _chosen(rows: list[dict[str, str]], names: list[str]) -> list[dict[str, str]]:
    """The rows of the settings or sections ``names``; every row when there are none."""
    from loes.errors import LoesError

    if not names:
        return rows
    unknown = [n for n in names if not any(_under(r["name"], n) for r in rows)]
    if unknown:
        sections = sorted({r["name"].split(".")[0] for r in rows if "." in r["name"]})
        raise LoesError(
            f"no setting or section {', '.join(map(repr, unknown))}; the sections are "
            f"{', '.join(sections)} (and the top-level out, device, seed)."
        )
    return [r for r in rows if any(_under(r["name"], n) for n in names)]


def _under(name: str, wanted: str) -> bool:
    return name == wanted or name.startswith(wanted + ".")


def _text(rows: list[dict[str, str]]) -> str:
    lines = []
    for row in rows:
        unit = f"{row['unit']}; " if row["unit"] else ""
        lines.append(f"{row['name']} = {row['default']}  ({unit}{row['allowed']})")
        lines += textwrap.wrap(
            row["description"], width=96, initial_indent="    ", subsequent_indent="    "
        )
    return "\n".join(lines)


def _markdown(rows: list[dict[str, str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| setting | default | unit | allowed | meaning |", "|---|---|---|---|---|"]
    lines += [
        f"| `{r['name']}` | `{r['default']}` | {r['unit']} | {cell(r['allowed'])} | "
        f"{cell(r['description'])} |"
        for r in rows
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    rows = _chosen(settings_rows(), args.names)
    print(_markdown(rows) if args.markdown else _text(rows))
    return 0
