"""Client risk: fill markouts against Hyperliquid's mid, per-client toxicity metrics, the client-group
classifier that feeds routing, the what-if replay of groups and the B-book P&L attribution."""
