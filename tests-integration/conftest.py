"""Cross-package tests: real wheels, real virtualenvs, real services."""
