"""From bytes to records: framing, the pre-filter, multi-line records and line formats."""
