"""The read-only web UI: experiments, runs, DAGs, logs and artifacts, for the person using it.

Layer: beside the controllers (independent of them), above the adapters (it reads through
the Kubernetes adapter's `Kube` Protocol), below the command line (which mounts it on the
operator's endpoint or serves it alone).
"""

#: Where the UI lives on a server: the page, its static files, and its JSON API under api/.
PREFIX = "/ui/"
