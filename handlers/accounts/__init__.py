"""The accounts slice: customers' accounts in one currency, their movements and transfers.
It contributes everything through hooks (``plugin.py``), found by its entry point."""
