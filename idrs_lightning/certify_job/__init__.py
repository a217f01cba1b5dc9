"""The certification job behind ``certify.py``: checkpoint formats, the evaluated classifier,
the resumable results file and its record, sharding over processes, merging and reporting."""
