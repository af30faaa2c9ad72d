"""Evals: suites on real routing data, the field's metrics, reports."""

from pathlib import Path

SUITES_DIR = Path(__file__).resolve().parent / "suites"
"""The suites shipped with crossroads (``crossroads eval suites`` lists them)."""

__all__ = ["SUITES_DIR"]
