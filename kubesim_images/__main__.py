"""`python -m kubesim_images` is the CLI."""

from __future__ import annotations

import sys

from kubesim_images.cli import main

sys.exit(main())
