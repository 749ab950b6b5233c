"""Event bodies: core/v1 (`corev1`), events.k8s.io/v1 (`eventsv1`), and tables for people."""
