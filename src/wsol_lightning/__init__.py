"""wsol-lightning: weakly supervised object localization methods as PyTorch Lightning modules."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
