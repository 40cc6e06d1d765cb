"""``python -m sam2_model.track``: the same as ``sam2-track``."""

import sys

from .cli import main

sys.exit(main())
