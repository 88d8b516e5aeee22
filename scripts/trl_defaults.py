"""The default of every GRPOConfig field, read from TRL's source text (no TRL import, so any release can be read):
`python scripts/trl_defaults.py PATH/grpo_config.py > defaults.json` (PATH `-` reads stdin).

tests/fixtures/trl-1.9.0-grpo-config-defaults.json was made this way from trl's `v1.9.0` tag
(`git show v1.9.0:trl/trainer/grpo_config.py | python scripts/trl_defaults.py -`); the test compares it with the
installed release read the same way, so every default that moved since 1.9 is named in infimmr_core/trl_compat.py.
"""

from __future__ import annotations

import ast
import json
import sys


def grpo_config_defaults(source: str) -> dict[str, str]:
    """Field name -> its default as source text (`field(default=...)`, `default_factory=...` or a plain value)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "GRPOConfig":
            break
    else:
        raise ValueError("no class GRPOConfig in this source")
    defaults = {}
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        value = statement.value
        if isinstance(value, ast.Call):
            value = next((kw.value for kw in value.keywords if kw.arg in ("default", "default_factory")), None)
        defaults[statement.target.id] = ast.unparse(value) if value is not None else "<required>"
    return defaults


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/trl_defaults.py PATH/grpo_config.py|-")
    text = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1]).read()
    json.dump(grpo_config_defaults(text), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
