"""The Kubernetes adapter: every call pipesync makes to the API server, counted.

Layer: an adapter beside gitops, runtime and observe (independent of them), below the
controllers and the UI, which both depend on the `protocol.Kube` Protocol and receive a
`client.KubeClient` (or a test fake) from the command line. `protocol` imports no
Kubernetes client (cheap to import); `client` does. kopf's own watches and patches are its
machinery, not ours, and stay outside.
"""
