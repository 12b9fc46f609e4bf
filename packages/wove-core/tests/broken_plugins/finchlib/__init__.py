"""A stand-in for a backend client library, imported only when a ``finch`` environment starts."""

from __future__ import annotations

__version__ = "1.4"


class Perch:
    """A connection to the finch service."""

    def __init__(self, address: str) -> None:
        self.address = address
