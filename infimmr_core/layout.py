"""Names inside stored artifacts that a stage and its readers (the next stage, the stage graph, the UI) share.

Constants only, so any module imports them without its key following more than these names.
"""

MODEL_DIR = "model"  # a phase artifact's Hugging Face model directory (the next phase starts from it)
BASE_STAGE = "base"  # the warm-up stage: its artifact's MODEL_DIR is the recipe's base model
WARMUP_LOG = "warmup.jsonl"  # the base stage's curve: one line per vision pre-warm log and per dev check
METRICS_FILE = "metrics.jsonl"  # a phase artifact's training log (TRL's log history, one line per entry)
CURVES_FILE = "curves.png"  # a phase artifact's reward and accuracy curves
# A phase's run record, the artifact `<phase><RUN_RECORD_SUFFIX>/<phase key>` beside the phase's own: how this
# computation of the key went (wall-clock figures, TensorBoard's events). No key reads it, so it may differ per run.
RUN_RECORD_SUFFIX = "-run"
TIMINGS_FILE = "timings.jsonl"  # the run record's wall-clock fields of each log entry, with its step

SHARD_DIR = "shards"  # curate-collect's accepted samples, one Parquet file per shard
SHARD_PREFIX = "shard-"  # shard-00000, shard-00001, ...: a shard's file stem, task-run name and merge input name

# The curation ledger, written by every part and merged by the curate stage.
COUNTS_FILE = "ledger.json"
QUARANTINE_FILE = "quarantine.jsonl"
DECONTAMINATION_FILE = "decontamination.jsonl"
LEDGER_FILES = (COUNTS_FILE, QUARANTINE_FILE, DECONTAMINATION_FILE)

COLLECT_PREFIX = "collect:"  # the merge's inputs: "collect:<ledger file>" from curate-collect, then one per shard
