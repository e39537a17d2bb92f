"""The stream consumer and the read API."""
