"""Judging a result: the reference engine, the error model and the verdicts."""
