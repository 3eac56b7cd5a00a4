import sys

from mipnet.cli import main

sys.exit(main())
