"""``python -m polyrnn``: the ``polyrnn`` command."""

import sys

from .cli import main

sys.exit(main())
