"""Regenerate frmask/data/example_scores.csv: a small, synthetic, seeded score file for the quick start.

It imitates cosine scores of a face model on a masked-face protocol: 60 subjects with 6 images each,
a per-subject quality offset (so scores correlate within a subject, as real ones do), every genuine pair
and 3,600 impostor pairs, plus 3 failures to acquire (empty score: 1 genuine, 2 impostor). Run: python tools/make_example_scores.py
"""

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "frmask" / "data" / "example_scores.csv"


def main(seed: int = 20211) -> None:
    rng = np.random.default_rng(seed)
    n_subjects, per_subject = 60, 6
    names = [f"subject_{k:02d}" for k in range(n_subjects)]
    quality = rng.normal(0.0, 0.08, n_subjects)
    rows = []
    for s in range(n_subjects):
        for a in range(per_subject):
            for b in range(a + 1, per_subject):
                score = 0.52 + quality[s] + rng.normal(0.0, 0.11)
                rows.append((score, 1, names[s], names[s]))
    pairs = set()
    while len(pairs) < 3600:
        a, b = rng.integers(0, n_subjects, 2)
        if a != b:
            pairs.add((min(a, b), max(a, b), int(rng.integers(0, per_subject ** 2))))
    for a, b, _ in sorted(pairs):
        score = 0.08 + 0.5 * (quality[a] + quality[b]) + rng.normal(0.0, 0.085)
        rows.append((score, 0, names[a], names[b]))
    order = rng.permutation(len(rows))
    lines = ["score,label,subject_a,subject_b"]
    n_genuine = n_subjects * per_subject * (per_subject - 1) // 2
    fta = {int(rng.integers(0, n_genuine)), *(n_genuine + rng.choice(len(rows) - n_genuine, 2, replace=False))}
    for k in order:
        score, label, sa, sb = rows[k]
        text = "" if k in fta else f"{np.clip(score, -1, 1):.4f}"
        lines.append(f"{text},{label},{sa},{sb}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(rows)} pairs)")


if __name__ == "__main__":
    main()
