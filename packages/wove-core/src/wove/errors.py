"""The exceptions under the module name wove 2.x gave them: ``from wove.errors import ...``.

Kept so 2.x imports keep working (``UnresolvedSignatureError`` lived here); new code imports the
same classes from ``wove``. Nothing is defined here: each name is the 3.x class, so ``except``
clauses catch the same errors whichever module they were imported from.
"""

from __future__ import annotations

from ._errors import MissingDispatchFeatureError, UnresolvedSignatureError

__all__ = ["MissingDispatchFeatureError", "UnresolvedSignatureError"]
