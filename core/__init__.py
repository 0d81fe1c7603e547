"""The ground: what every room stands on (users and keys, audit, alerts, the outbox, money types,
errors, process caches and loops). It imports no room and nothing of the frame."""
