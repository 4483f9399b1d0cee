"""Test configuration. Factories live in tests/support/factories.py (on the pytest path)."""
