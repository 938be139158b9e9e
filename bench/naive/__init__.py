"""The naive design, for comparison only (issue 13 item 4): a workflow per symbol that
polls with a timer and runs one activity per tick (fetch the price, evaluate the entry or
exit rule of the same pure core, ``trader/core``), so every tick lands in its history.

Bench-only: nothing in ``trader/``, ``workflows/`` or ``activities/`` uses it. No slot
grant, no fill wait, no ladder: one IOC order per decision, which is all the comparison
needs (history events, CPU, trigger -> order latency). ``bench/load.py --design naive``
runs it.
"""
