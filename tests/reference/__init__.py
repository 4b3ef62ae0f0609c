"""Reference helpers for the onepass tests (transformers only; never imports onepass)."""
