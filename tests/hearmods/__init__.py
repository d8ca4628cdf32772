"""Tiny HEAR 2021 modules for the tests (no download): a working one and one that breaks the API on request."""
