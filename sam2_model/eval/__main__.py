"""``python -m sam2_model.eval``: held-out evaluation on synthetic video."""

import sys

from .synthetic import main

sys.exit(main())
