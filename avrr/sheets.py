"""Spreadsheet cells: what the desk's CSV and the review sheet write."""


def cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
