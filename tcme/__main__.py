"""``python -m tcme`` runs the command line."""

import sys

from tcme.cli import main

sys.exit(main())
