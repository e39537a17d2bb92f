"""lazyshift: zero-downtime MongoDB -> MySQL migration toolkit."""

__version__ = "0.1.0"
