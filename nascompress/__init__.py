"""nascompress: joint architecture + compression search for small, fast, accurate networks.

``nascompress.load_run(path)`` returns a :class:`nascompress.api.RunResult` (the front as a
pandas DataFrame, picking, export). It is imported lazily so ``import nascompress`` stays
cheap (no torch, ray or pandas).
"""

__version__ = "0.1.0"

__all__ = ["RunResult", "__version__", "load_run"]


def __getattr__(name: str):
    if name in ("load_run", "RunResult"):
        from nascompress import api

        return getattr(api, name)
    raise AttributeError(f"module 'nascompress' has no attribute {name!r}")
