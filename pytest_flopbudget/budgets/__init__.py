"""Budgets and judgement: units, marker and pyproject parsing, verdicts, baselines, growth.

Budget + count -> verdict. Pure data and arithmetic: no torch, no pytest, no file writing
(reading pyproject.toml and the baseline, yes). Above ``counting`` (it reads ``Count``
values), below ``reports``.
"""
