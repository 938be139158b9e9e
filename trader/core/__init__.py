"""The pure domain core: phases, transition table, state, rules, sizing, PnL, errors.

Nothing in this package performs I/O or imports temporalio or ccxt, so workflows, the
activities and the tests can all use it freely.
"""
