"""Test configuration. Factories live in tests/factories.py (on the pytest path)."""
