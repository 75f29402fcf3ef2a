"""`python -m erase` entry point."""
import sys

from erase.cli import main

sys.exit(main())
