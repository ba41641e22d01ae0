"""``python -m engine`` runs the ``magnetar`` command."""

import sys

from engine.cli.main import main

sys.exit(main())
