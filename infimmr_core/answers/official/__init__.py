"""Each benchmark's official scoring semantics, reproduced verdict for verdict in this project's own code.

One module per benchmark, each a named policy built from the official repository's scoring code as released
(commit pinned in the module docstring), including its known quirks: `official` verdicts must match the published
numbers' scorer, not what we think is right (that is `answers.compare`, the `semantic` verdict). Where a quirk is known
to decide a verdict, the policy says so in its result's `quirk`, so reports can count the rows it affected.
"""
