"""The helpers under the module name wove 2.x gave them: ``from wove.helpers import flatten``.

Kept so 2.x imports keep working; new code imports the same functions from ``wove``. Nothing is
defined here: each name is the 3.x implementation.
"""

from __future__ import annotations

from ._threads import sync_to_async
from ._transforms import batch, denone, flatten, fold, redict, undict

__all__ = ["batch", "denone", "flatten", "fold", "redict", "sync_to_async", "undict"]
