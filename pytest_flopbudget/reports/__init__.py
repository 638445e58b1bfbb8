"""Verdicts -> reports: the terminal table, the JSON file, the pyproject update."""
