"""``python -m autometa`` runs the ``autometa`` command."""
import sys

from autometa.cli import main

sys.exit(main())
