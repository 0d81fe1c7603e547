"""Database guards and seed data for the wallets app.

* ledger_batches, ledger_transfers and balance_logs are append-only (UPDATE/DELETE refused);
* the ``wallets`` view derives each user's wallet from the ledger;
* chain and platform configuration rows with spec 06 defaults.
"""

from django.db import migrations

from core.db import append_only

WALLETS_VIEW = """
CREATE OR REPLACE VIEW wallets AS
SELECT a.user_id AS user_id,
       COALESCE(SUM(a.balance), 0) AS total_balance,
       COALESCE(SUM(a.balance) FILTER (WHERE a.kind = 'cash'), 0) AS cash_balance,
       COALESCE(SUM(a.balance) FILTER (WHERE a.kind IN ('isolated_margin', 'order_hold')), 0) AS frozen_margin,
       COALESCE(SUM(a.balance) FILTER (WHERE a.kind = 'pending_withdrawal'), 0) AS pending_withdrawal
FROM ledger_accounts a
WHERE a.user_id IS NOT NULL AND a.asset = 'USDC'
GROUP BY a.user_id;
"""

CHAINS = {
    "TRON": (["USDT"], "TRX", 19, True),
    "ETH": (["USDT", "USDC"], "ETH", 12, True),
    "SOL": (["USDT", "USDC"], "SOL", 32, True),
    "ARBITRUM": (["USDC"], "ETH", 12, False),
}


def seed(apps, schema_editor):
    ChainConfig = apps.get_model("wallets", "ChainConfig")
    WalletConfig = apps.get_model("wallets", "WalletConfig")
    for chain, (assets, native, confirmations, user_facing) in CHAINS.items():
        ChainConfig.objects.get_or_create(
            chain=chain,
            defaults={
                "assets": assets,
                "native_asset": native,
                "confirmations": confirmations,
                "deposits_enabled": user_facing,
                "withdrawals_enabled": user_facing,
            },
        )
    WalletConfig.objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]

    operations = [
        append_only("ledger_batches"),
        append_only("ledger_transfers"),
        append_only("balance_logs"),
        migrations.RunSQL(WALLETS_VIEW, reverse_sql="DROP VIEW IF EXISTS wallets;"),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
