"""Data larger than memory: ``ParquetSource``, ``NpySource`` and ``prefetch``.

The implementation lives in :mod:`cleanfit.data.outofcore`; ``cleanfit.outofcore`` is the public
path the README shows.
"""

from __future__ import annotations

from cleanfit.data.outofcore import NpySource, ParquetSource, prefetch

__all__ = ["ParquetSource", "NpySource", "prefetch"]
