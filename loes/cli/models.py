"""``loes models``: the registered networks, their sizes and shapes."""

from __future__ import annotations

import argparse

from loes.errors import LoesError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list the registered networks",
        description="List the registered networks with parameter counts, the flattened feature "
        "size and the output shape for a given input size.",
    )
    parser.add_argument(
        "--spatial-size",
        nargs=3,
        type=int,
        default=(160, 192, 160),
        metavar=("D", "H", "W"),
        help="input size in voxels (default: 160 192 160)",
    )
    parser.add_argument("--in-channels", type=int, default=1, help="input channels (default: 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from loes.models import available_networks, summarize_network

    size = tuple(args.spatial_size)
    if args.in_channels < 1:
        raise LoesError(f"--in-channels must be at least 1, got {args.in_channels}.")
    table = Table(
        title=f"Registered networks for input (B, {args.in_channels}, {', '.join(map(str, size))})"
    )
    for column in ("network", "parameters", "flattened features", "output"):
        table.add_column(column, justify="left" if column == "network" else "right")
    for name in available_networks():
        try:
            summary = summarize_network(name, size, in_channels=args.in_channels)
        except ValueError as error:
            table.add_row(name, "-", "-", f"[red]{error}[/red]")
            continue
        table.add_row(
            name,
            f"{summary.parameters:,}",
            f"{summary.feature_size:,}",
            "(B, " + ", ".join(map(str, summary.output_shape[1:])) + ")",
        )
    Console().print(table)
    return 0
