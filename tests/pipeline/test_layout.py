"""The rooms of ``loes.pipeline`` import only what the layout table of ``loes/pipeline/__init__``
allows, and importing a room loads no room it does not need."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[2] / "loes" / "pipeline"

#: room -> the other rooms its modules may import (the layout table of docs/layout.md)
ALLOWED = {
    "run": set(),
    "report": {"run"},
    "predict": {"run"},
    "explain": {"run", "predict"},
    "cluster": {"run", "cross_validation"},  # slurm prepares the run folder as `loes cv` does
    # DDP, the disk cache; the training profile at the start, the report at the end
    "cross_validation": {"run", "cluster", "report", "predict"},
}
#: the module kept for bundles exported before the split, outside every room
COMPATIBILITY = {"prediction_page.py": {"predict"}}


def _rooms_imported(path: Path) -> set[str]:
    """The rooms of ``loes.pipeline`` that the module at ``path`` imports, anywhere in it."""
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["loes", "pipeline"] and len(parts) > 2 and parts[2] in ALLOWED:
                rooms.add(parts[2])
    return rooms


def test_every_module_lives_in_a_room():
    loose = {p.name for p in PIPELINE.glob("*.py")} - {"__init__.py", *COMPATIBILITY}
    assert loose == set()
    assert {p.name for p in PIPELINE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        ALLOWED
    )


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_a_room_imports_only_the_rooms_the_layout_allows(room):
    for path in (PIPELINE / room).rglob("*.py"):
        others = _rooms_imported(path) - {room}
        assert others <= ALLOWED[room], f"{path.relative_to(PIPELINE)} imports {others}"


def test_no_module_is_over_450_lines():
    package = PIPELINE.parent
    lengths = {p: len(p.read_text().splitlines()) for p in package.rglob("*.py")}
    assert {str(p.relative_to(package)): n for p, n in lengths.items() if n > 450} == {}


def test_the_report_room_loads_no_training_module():
    code = "import sys, loes.pipeline.report.write; print(' '.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    pipeline = {m for m in loaded if m.startswith("loes.pipeline.")}
    assert "loes.pipeline.report.write" in pipeline
    assert {m.split(".")[2] for m in pipeline} == {"report", "run"}


def test_public_names_load_their_room_on_first_use():
    code = (
        "import sys, loes.pipeline as p; before = 'loes.pipeline.predict' in sys.modules; "
        "p.load_ensemble; print(before, 'loes.pipeline.predict.members' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
