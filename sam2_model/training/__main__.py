"""``python -m sam2_model.training`` = ``sam2-train``."""

import sys

from .cli import main

sys.exit(main())
