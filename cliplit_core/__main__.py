import sys

from .cli.app import MODULE_PROG, main

sys.exit(main(prog=MODULE_PROG))
