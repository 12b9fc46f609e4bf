"""``python -m wove`` and the ``wove`` command: check the installation, then run the CLI.

The check comes first and imports only the standard library, so a package damaged by an old
``wove`` uninstall still gets a message with the command that repairs it instead of a traceback.
"""

from __future__ import annotations

import sys

from ._install import installation_problems


def main() -> int:
    """Run the ``wove`` command line; exit status 2 when the installation cannot run."""
    problems = [p for p in installation_problems() if p.level != "note"]
    for problem in problems:
        print(f"wove: {problem.level}: {problem}", file=sys.stderr)
    if any(problem.level == "error" for problem in problems):
        return 2
    from ._cli import main as run_cli

    return run_cli()


if __name__ == "__main__":
    raise SystemExit(main())
