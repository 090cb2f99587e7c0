"""Helpers the tests share that are not fixtures (jobs a real worker can import)."""
