"""Reproducible benchmark runners (behind ``autometa bench``)."""
