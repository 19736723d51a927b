"""The package's version, in a module of its own so that every part can read it without
importing the package root (which imports the manager)."""

__version__ = "0.1.0"
