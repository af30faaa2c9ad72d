"""Data shipped with crossroads (recorded routing outcomes, tokenizer ranks); see each folder's README/NOTICE."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
"""Root of the shipped data files."""
