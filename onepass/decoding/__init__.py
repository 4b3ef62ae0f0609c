"""Decoding: greedy RNN-T over encoder frames, and tokens -> text, words, language."""
