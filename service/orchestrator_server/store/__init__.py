"""Storage: the `Store` interface the core depends on, and its SQLite implementation."""

from .base import DuplicateRequestError, Store
from .sqlite import SQLiteStore

__all__ = ["DuplicateRequestError", "SQLiteStore", "Store"]
