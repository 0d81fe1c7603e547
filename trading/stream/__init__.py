"""Trader streams over websockets: the private user data stream (``ws/v1/user``: orders, fills,
positions, balances, liquidations, funding, deposits, withdrawals — per-user sequence, snapshot, resume)
and the public market stream (``ws/v1/market``). Wire protocol: ``docs/stream.md`` / ``docs/asyncapi.yaml``."""
