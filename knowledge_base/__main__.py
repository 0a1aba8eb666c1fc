"""`python -m knowledge_base`: see knowledge_base/cli.py."""

import logging
import sys

from knowledge_base.cli import main

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
sys.exit(main())
