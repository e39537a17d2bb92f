"""The control plane: the mode ladder (ladder.py), what the checks look at (facts.py), the
stage gate (gate.py), fenced transitions (plane.py) and the data they copy (steps.py)."""
