"""Adapters that run tasks: the local executor (subprocesses) and, later, the pod builder."""
