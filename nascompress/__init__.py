"""nascompress: joint architecture + compression search for small, fast, accurate networks."""

__version__ = "0.1.0"
