"""``python -m trainables.linear_byol``: see :mod:`trainables.linear_byol.cli`."""

import sys

from trainables.linear_byol.cli import main

sys.exit(main())
