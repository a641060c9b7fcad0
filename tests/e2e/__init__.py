"""End-to-end tests against a real kube-apiserver, etcd, scheduler and services."""
