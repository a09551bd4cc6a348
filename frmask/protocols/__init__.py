"""Verification protocols: which images to embed and which pairs to compare (MFR2, insightface ``.bin``
benchmarks, a generic CSV of pairs), with their scenarios."""
