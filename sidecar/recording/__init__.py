"""From EventSpecs to written Events, shared by the daemon and `replay`.

The recorder correlates, builds and writes with retries; the poster drives it in order.
"""
