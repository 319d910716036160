"""Fakes of external systems, served over real HTTP for the tests."""
