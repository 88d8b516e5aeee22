"""What an official policy returns: the verdict, what it compared, and the known official-code quirk (if any) that
decided it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Official:
    correct: bool
    compared: str | None  # the answer as the official code compares it (its extraction or normalised prediction)
    quirk: str = ""  # "" unless a known bug or oddity of the official code decided this verdict


def python_float_ok(text: str) -> bool:
    """Whether Python's ``float()`` reads ``text`` (" 5", "1e3", "inf", "1_000": yes; "1,000", "1/2": no): several
    official scorers branch on exactly this."""
    try:
        float(text)
        return True
    except ValueError:
        return False
