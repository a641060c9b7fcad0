"""pipesync: machine-learning pipelines on Kubernetes, declared in git."""

__version__ = "0.1.0"
