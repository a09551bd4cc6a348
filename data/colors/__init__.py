"""Mask colour palettes (CSV files: name,r,g,b), installed as the resource package ``frmask.colors``."""
