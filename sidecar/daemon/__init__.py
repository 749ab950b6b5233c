"""The long-running `run` command.

Sources feed the pipeline and the poster; checkpoints, reloads and source health run beside them.
"""
