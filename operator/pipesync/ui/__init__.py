"""The read-only web UI: experiments, runs, DAGs, logs and artifacts, for the person using it.

Layer: above the controllers (it reads through their Kubernetes adapter) and below the
command line (which mounts it on the operator's endpoint or serves it alone).
"""

#: Where the UI lives on a server: the page, its static files, and its JSON API under api/.
PREFIX = "/ui/"
