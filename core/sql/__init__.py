"""Hand-built SQL shared by the rooms: statement batches sent in one round trip (``core.sql.batch``),
the same batches as server-side prepared statements (``core.sql.prepared``) and bulk writes whose rows
travel as one JSON parameter (``core.sql.json_rows``). Domain statements (ledger postings, liquidation
writes) stay in their rooms and are built on these."""
