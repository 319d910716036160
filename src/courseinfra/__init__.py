"""courseinfra: the course infrastructure jobs of a learning platform."""

__version__ = "0.1.0"
