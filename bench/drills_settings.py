"""Settings of the processes ``make drills`` starts: the test settings (TRON and Solana on the drills'
sandbox: ``bench.chains_settings``), logging as in production.

The test (and local) settings render tracebacks with rich, locals included: under a fault that is
seconds of CPU per error while holding the logging lock, which stalls the whole web process — a cost
production (JSON logs, plain tracebacks) does not have, so the drills would measure the logger."""

from bench.chains_settings import *  # noqa: F403

LOG_JSON = True
