"""``spotcheck fuzz``: generate, run, score and cluster in a loop that steers
generation toward where the model fails.

``loop.run_fuzz`` is the entry point; ``bandit`` chooses the arms of each
round, ``sources`` makes their cases per domain, ``state`` keeps fuzz.json,
and ``summary`` writes profile.json and report.md.
"""
