"""The correlator stage: stitches hop events into business transactions.

Other stages read transactions only through these names.
"""

from correlator.queries import (
    BadQuery,
    TransactionFilter,
    decode_cursor,
    get_transaction,
    get_transactions,
    list_transactions,
)

__all__ = [
    "BadQuery",
    "TransactionFilter",
    "decode_cursor",
    "get_transaction",
    "get_transactions",
    "list_transactions",
]
