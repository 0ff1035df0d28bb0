"""Fault and abuse suites: crashes, upstream faults, bad input, disk faults and secrets."""
