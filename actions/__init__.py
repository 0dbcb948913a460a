"""Custom actions of the AVRR assistant, one module per topic."""
