"""Folder processing (``refocus batch``): not implemented yet (issue: the batch CLI)."""
