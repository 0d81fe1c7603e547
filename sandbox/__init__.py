"""The world outside XBIT: local stand-ins for Hyperliquid, the blockchains and alert receivers.

Nothing here imports the house (``xbit_admin``, ``wallets``, ``trading``, ``routing``, ``risk``);
the house reaches these servers only over HTTP/websocket, with the same clients it uses in production.
"""
