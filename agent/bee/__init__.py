"""bee: hardware audit agent for GPU servers (pure standard library)."""

__version__ = "0.1.0"
