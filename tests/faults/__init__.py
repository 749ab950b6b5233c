"""The fault suite: real failures (kill -9, outages, hostile input) with exact accounting."""
