"""Tests of pipesync: unit/ needs nothing, e2e/ needs a real control plane."""
