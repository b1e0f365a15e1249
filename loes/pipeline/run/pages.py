"""The Jinja2 templates of loes's pages: each room that writes a page (report, predict,
explain) keeps its template in its own ``templates/`` folder, shipped by one package-data rule."""

from __future__ import annotations

import functools

import jinja2

__all__ = ["package_template"]


@functools.cache
def package_template(package: str, name: str) -> jinja2.Template:
    """``package``'s ``templates/name`` (``package``: a room, ``"loes.pipeline.report"``):
    HTML-escaped, undefined names an error, block tags without the blank lines around them."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(name)
