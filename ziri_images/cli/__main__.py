"""Run the command line as ``python -m ziri_images.cli`` (the Procfile's release line, bin/ziri-images)."""

import sys

from .entry import main

sys.exit(main())
