"""Write the course's two data files from the copies that scikit-learn ships.

    python -m venv /tmp/sklearn-env
    /tmp/sklearn-env/bin/pip install scikit-learn==1.9.1
    /tmp/sklearn-env/bin/python data/make_datasets.py

scikit-learn is needed only here, never by the course: it ships both UCI data
sets unchanged (``sklearn/datasets/data/breast_cancer.csv`` and
``digits.csv.gz``). This script rewrites them as plain CSV files with a header
row, using nothing but the csv module to write, and prints each file's size
and SHA-256 (data/README.md lists them). Run from anywhere; the files land
beside this script.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def number(value) -> str:
    """A float as the shortest text that reads back to the same float64 ("17.99", "1001")."""
    import numpy as np

    return np.format_float_positional(float(value), trim="-")


def write(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="", encoding="ascii") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path.name}: {path.stat().st_size} bytes, sha256 {digest}")


def main() -> int:
    try:
        import sklearn
        from sklearn.datasets import load_breast_cancer, load_digits
    except ImportError:
        print("this script needs scikit-learn (pip install scikit-learn in a throw-away environment)",
              file=sys.stderr)
        return 2
    print(f"scikit-learn {sklearn.__version__}")

    cancer = load_breast_cancer()
    # scikit-learn codes the diagnosis 0 = malignant, 1 = benign; UCI's wdbc.data writes M and B.
    names = list(cancer.target_names)
    assert names == ["malignant", "benign"], names
    letters = {0: "M", 1: "B"}
    write(HERE / "breast_cancer.csv",
          ["diagnosis", *[str(n) for n in cancer.feature_names]],
          ([letters[int(t)], *map(number, row)] for row, t in zip(cancer.data, cancer.target)))

    digits = load_digits()
    header = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)] + ["digit"]
    write(HERE / "digits.csv", header,
          ([*(str(int(v)) for v in row), str(int(t))] for row, t in zip(digits.data, digits.target)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
