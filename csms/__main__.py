import sys

from csms.cli import main

sys.exit(main())
