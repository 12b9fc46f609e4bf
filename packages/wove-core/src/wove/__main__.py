"""``python -m wove``: the same as the ``wove`` command."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
