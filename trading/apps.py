from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"

    def ready(self) -> None:
        # imported here, once the app registry is loaded: these modules define or query models
        from core.accounts.management.commands.seed_demo import DEMO_SEEDERS
        from core.health import ADVISORY_CHECKS
        from trading import (
            config,  # noqa: F401  (registers trading_defaults_ensure)
            limit_trigger,
            tasks,  # noqa: F401  (registers the hourly markets sync with beat)
        )
        from trading.account import cross_margin_used_for, withdrawable_for
        from trading.demo import seed_trading_demo
        from trading.hl_accounts import seed_hl_accounts_demo
        from trading.markets import seed_markets_demo
        from trading.orders import triggers
        from trading.selectors import feed_readiness
        from wallets.hooks import register_cross_margin_provider, register_withdrawable_provider

        for seeder in (seed_markets_demo, seed_hl_accounts_demo, seed_trading_demo):
            if seeder not in DEMO_SEEDERS:
                DEMO_SEEDERS.append(seeder)
        # advisory: a silent HL feed must not take every web pod (and the console) out of service;
        # the order path refuses stale prices by itself
        if not any(name == "hl_feed" for name, _check in ADVISORY_CHECKS):
            ADVISORY_CHECKS.append(("hl_feed", feed_readiness))

        register_cross_margin_provider(cross_margin_used_for)
        register_withdrawable_provider(withdrawable_for)

        limit_trigger.register()
        triggers.register()  # TP/SL checked on every mark in the feed process
