"""The Jinja2 templates shipped inside loes's packages (the report and the prediction page)."""

from __future__ import annotations

import functools

import jinja2

__all__ = ["package_template"]


@functools.cache
def package_template(package: str, name: str) -> jinja2.Template:
    """``package``'s ``templates/name``: HTML-escaped, undefined names an error, block tags
    without the blank lines around them."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(name)
