"""Verification protocols: which images to embed and which pairs to compare (MFR2, insightface ``.bin``
benchmarks, a generic CSV of pairs, exhaustive identity folders), with their scenarios."""

from __future__ import annotations

from frmask.protocols.base import ALIGN_MODES, ImageEntry, Protocol

__all__ = ["PROTOCOLS", "ALIGN_MODES", "ImageEntry", "Protocol", "load_protocol"]

#: protocol names: ``mfr2`` (a folder), ``csv`` (a pairs CSV), ``folder`` (identity folders, every pair), and the insightface ``.bin`` benchmarks
PROTOCOLS = ("mfr2", "csv", "folder", "lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw")


def load_protocol(name: str, data, *, mask: str = "none", spec=None, seed: int = 0, align: str | None = None,
                  root=None) -> Protocol:
    """The protocol ``name`` over ``data`` (MFR2 folder, pairs CSV, identity folders, or ``.bin`` file).

    ``mask``/``spec``/``seed`` mask a ``.bin`` benchmark or the identity folders on the fly (as ``frmask
    synth`` would; :mod:`frmask.protocols.folder` says how to get identity labels and masked probes);
    ``align`` overrides how images are aligned (``auto``/``detect``/``none``); ``root`` is the folder the
    CSV's relative paths start from (default: the CSV's folder).
    """
    key = str(name).strip().lower()
    if key not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    if mask != "none" and key in ("mfr2", "csv"):
        raise ValueError(f"--mask applies to the .bin benchmarks and folder; protocol {key} uses its images as they are")
    if key == "mfr2":
        from frmask.protocols.mfr2 import load_mfr2

        return load_mfr2(data, align=align or "detect")
    if key == "folder":
        from frmask.protocols.folder import load_folder

        return load_folder(data, mask=mask, spec=spec, seed=seed, align=align or "auto")
    if key == "csv":
        from frmask.protocols.csv_pairs import load_csv_pairs

        return load_csv_pairs(data, root=root, align=align or "auto")
    if align not in (None, "none"):
        raise ValueError(f"the {key} benchmark holds aligned crops; align must be 'none'")
    from frmask.protocols.bins import load_bin

    return load_bin(key, data, mask=mask, spec=spec, seed=seed)
