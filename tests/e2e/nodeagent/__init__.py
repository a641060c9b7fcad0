"""A test node agent: a stand-in kubelet for the e2e suite.

The e2e tests need pods that really run, placed by the real scheduler on nodes
that look like a CPU node and a GPU node. There is no container runtime on the
machines this project runs on, so this agent registers two nodes, runs every
pod bound to them as local processes (bubblewrap maps volume mounts to their
container paths), reports pod status the way a kubelet does and serves
container logs on the kubelet port so `kubectl logs` works through the API
server. It is test infrastructure, not product code.

Run it with ``python -m tests.e2e.nodeagent --kubeconfig PATH --state-dir DIR``.
"""
