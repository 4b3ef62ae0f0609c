"""Command line: ``onepass transcribe | models | info``."""
