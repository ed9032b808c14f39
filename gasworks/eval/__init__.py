"""`gasworks eval`: suites of coding tasks run through the whole loop, to compare agents, models and
worker counts on the user's own machine. suite.py (the format), agents.py (scripted agents of
known quality), runner.py (one configuration through `gasworks run`), report.py (figures, table,
results file)."""
