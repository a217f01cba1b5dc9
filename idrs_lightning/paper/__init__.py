"""Reproductions of the IDRS paper's tables and figures (``python -m idrs_lightning.paper``).

Theory IDs recompute the paper's analytic results from :mod:`idrs_lightning.certification`;
experiment IDs train with ``train.py`` through the sweep machinery and certify with the
certification job. The paper's numbers are in ``numbers.json``.
"""
