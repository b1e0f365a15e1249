"""``python -m loes``: the ``loes`` command, as ``torchrun -m loes`` starts it."""

import sys

from loes.cli import main

sys.exit(main())
