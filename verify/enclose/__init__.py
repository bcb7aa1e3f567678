"""Rigorous enclosures: outward-rounded interval arithmetic and per-box bounds of |network - target|."""
