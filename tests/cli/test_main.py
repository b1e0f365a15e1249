import subprocess
import sys


def test_help_lists_every_command_without_importing_torch():
    """`loes --help` and argument errors stay instant: heavy imports wait for `run`."""
    probe = (
        "import sys\n"
        "from loes.cli import build_parser\n"
        "help = build_parser().format_help()\n"
        "print(sorted(m for m in ('torch', 'monai', 'sklearn', 'nilearn') if m in sys.modules))\n"
        "print(help)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    heavy, help_text = out.split("\n", 1)
    assert heavy == "[]"
    for command in ("cv", "models", "report", "synth", "validate"):
        assert command in help_text
