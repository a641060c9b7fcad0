"""The engine: pure pipeline logic, no I/O.

Planning, `when` expressions, fan-out, retries, parameter typing and templating live here
so that the Kubernetes controllers and the local executor make the same decisions, and so
that every decision is tested in microseconds. Time and state are passed in; decisions
are returned.
"""
