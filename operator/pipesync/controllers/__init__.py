"""kopf controllers: thin handlers over named reconcile steps (see the operator issue)."""
