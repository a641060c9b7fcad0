"""The resource model: documents parsed with their positions, checked against schemas/.

No external calls happen here: callers hand in text, and get back typed objects or
located diagnostics.
"""
