"""The pure core: no IO, no threads, no clock reads, no third-party imports.

Everything here takes ``now`` (a monotonic float, seconds) as an argument.
"""
