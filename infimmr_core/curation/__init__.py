"""Curation: answer typing, filters, dedup, decontamination, captioning, difficulty, pools, the ledger that accounts
for every row, and resumable shards. The curate stage runs in parts (collect.py, enrich.py, merged by stage.py).

Nothing is imported here: a part's key covers its own code closure, which includes this file."""
