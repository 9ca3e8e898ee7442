"""`python -m kubesim_images` is the CLI."""

from __future__ import annotations

from kubesim_images.cli import run

run()
