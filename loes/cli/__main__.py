import sys

from loes.cli import main

sys.exit(main())
