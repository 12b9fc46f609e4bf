"""A stand-in for a backend client library: the import a plugin must not make at discovery."""

from __future__ import annotations

__version__ = "2.1"


class Loft:
    """A connection to the pigeon service."""

    def __init__(self, address: str) -> None:
        self.address = address
