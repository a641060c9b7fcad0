"""The read-only web UI: experiments, runs, DAGs, logs and artifacts, for the person using it.

Layer: above the controllers (it reads through their Kubernetes adapter) and below the
command line (which mounts it on the operator's endpoint or serves it alone).
"""
