"""The one-shot commands that read a whole log: `replay` and the rules tests."""
