"""Console pages that read several rooms (routing, users, money, audit, alerts). Thin views: parse,
authorise, call one service (writes) or selectors (reads), render."""
