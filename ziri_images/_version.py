"""The package's version, in a leaf module that imports nothing of the package."""

__version__ = "0.1.0"
