"""The pure core: no I/O, no asyncio, no clocks of its own.

Strings, bytes and dicts in, frozen dataclasses out: decoding lines into records (`lines`), the
rules (`rules`), transitions, correlation and building Events (`events`). Everything here is
tested with plain unit tests and golden files; the engines above drive it.
"""
