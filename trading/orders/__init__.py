"""The life of an order: input, place, internal and HYPERLIQUID execution, fills, cancel."""
