"""Implementations of the service ports: SQL stores, caches, the event bus."""
