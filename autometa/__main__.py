"""``python -m autometa`` runs the ``autometa`` command."""
import sys

from autometa.apps.cli import main

sys.exit(main())
