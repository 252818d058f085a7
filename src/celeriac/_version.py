"""The version string of celeriac (layer 0: anything may import it, it imports nothing)."""

__version__ = "0.1.0"
