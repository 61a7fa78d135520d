"""The operator's verbs: status, check, evacuate, restore, rebalance, pause, resume.

``rpcdaemon.cli`` parses the command line and calls these; the decisions are in the pure
core (:mod:`rpcdaemon.core.statusmodel`, :mod:`rpcdaemon.core.checks`,
:mod:`rpcdaemon.core.evacuation`, :mod:`rpcdaemon.core.rebalance`).
"""
