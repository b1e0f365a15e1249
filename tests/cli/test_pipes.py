"""`loes ... | head`: the reader goes away, and loes stops quietly, as Unix tools do."""

import subprocess
import sys


def test_a_closed_pipe_ends_the_command_quietly():
    # the reader has gone before loes prints: its first write meets a broken pipe
    done = subprocess.run(
        f"{sys.executable} -m loes.cli settings --markdown | true; "
        'echo "status ${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert done.stdout.strip() in ("status 0", "status 141")
