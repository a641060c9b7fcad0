"""Metrics, the S3 mirror and Kubernetes Events."""
