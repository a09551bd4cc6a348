"""Synthetic face masks drawn from facial landmarks (work in progress: see the issues)."""
