"""`python -m yolobone COMMAND ARGS`: the same as the `yolobone` command."""
import sys

from yolobone.cli import main

sys.exit(main())
