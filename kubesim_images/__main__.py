"""`python -m kubesim_images` and the `kubesim-images` script: the CLI, imported without the
garbage collector walking what the imports create (`startup`)."""

from __future__ import annotations

from typing import NoReturn

from kubesim_images.startup import imports_without_gc


def main() -> NoReturn:
    with imports_without_gc():
        from kubesim_images.cli import run  # noqa: PLC0415 - imported under the guard

    run()


if __name__ == "__main__":
    main()
