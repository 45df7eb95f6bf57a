"""Storage adapters implementing the core's store port (`core/store_port.py`): SQLite."""

from .sqlite import SQLiteStore

__all__ = ["SQLiteStore"]
