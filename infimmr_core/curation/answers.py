"""Answer typing and unwrapping for curation: how the training reward will have to verify each gold answer.

The logic lives in the answer library (`infimmr_core.answers.classify`), which the reward and the scorers share;
unverifiable answers (proofs, essays) are filtered by curation, because a reward that cannot tell right from wrong
teaches noise.
"""

from __future__ import annotations

from infimmr_core.answers.classify import MAX_TEXT_WORDS, classify_answer
from infimmr_core.answers.classify import unwrap_answer as normalise_answer

__all__ = ["MAX_TEXT_WORDS", "classify_answer", "normalise_answer"]
