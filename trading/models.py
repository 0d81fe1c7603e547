from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import money_field, price_field, size_field


class TradingState(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    REDUCE_ONLY = "REDUCE_ONLY", "Reduce only"
    HALTED = "HALTED", "Halted"


class MarginTable(models.Model):
    """HL ``meta.marginTables`` entry (spec 03: never hard-coded, refreshed hourly)."""

    table_id = models.PositiveIntegerField(unique=True)
    description = models.CharField(max_length=120, blank=True)
    tiers = models.JSONField(help_text='[{"lowerBound": "0.0", "maxLeverage": 40}, ...]')
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"margin table {self.table_id}"


class Market(models.Model):
    """A perpetual listed on HL, as synced from ``meta`` (asset index = position in HL's universe).

    ``trading_state`` is the verdict risk pushes down (ACTIVE / REDUCE_ONLY / HALTED): closing and
    liquidation are always allowed."""

    asset = models.CharField(max_length=20, unique=True)
    hl_index = models.PositiveIntegerField(unique=True)
    sz_decimals = models.PositiveSmallIntegerField()
    max_leverage = models.PositiveSmallIntegerField()
    margin_table_id = models.PositiveIntegerField()
    only_isolated = models.BooleanField(default=False)
    is_delisted = models.BooleanField(default=False)
    trading_state = models.CharField(max_length=12, choices=TradingState.choices, default=TradingState.ACTIVE)
    state_reason = models.CharField(max_length=200, blank=True)
    listed_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["hl_index"]
        constraints = [
            models.CheckConstraint(name="market_leverage_positive", condition=Q(max_leverage__gte=1))
        ]

    def __str__(self) -> str:
        return self.asset


class MarketListingLog(models.Model):
    """A listing change seen in ``meta`` (new asset, delisting, parameter change) — spec 02."""

    asset = models.CharField(max_length=20)
    change = models.CharField(max_length=40)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.asset}: {self.change}"


class FeedStatus(models.Model):
    """Heartbeat of the market-data feed process (one row per feed instance), for readiness and
    the console: last message time, connection state, reconnect count."""

    name = models.CharField(max_length=40, unique=True)
    connected = models.BooleanField(default=False)
    last_message_at = models.DateTimeField(null=True, blank=True)
    reconnects = models.PositiveIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"feed {self.name}: {'up' if self.connected else 'down'}"


class TradingConfig(models.Model):
    """Operator-tunable trading parameters (one row, ``key="default"``); read through a process
    cache invalidated on write. Defaults are spec 02's numbers."""

    key = models.CharField(max_length=20, unique=True, default="default")
    min_order_value = money_field(default=10)
    market_default_slippage_bps = models.PositiveIntegerField(default=500)  # 5%, HL SDK's default
    max_slippage_bps = models.PositiveIntegerField(default=1000)
    book_stale_seconds = models.DecimalField(max_digits=6, decimal_places=2, default=5)
    gtc_expiry_days = models.PositiveIntegerField(default=7)
    max_open_orders_per_user = models.PositiveIntegerField(default=200)
    client_loss_reserve_share = models.DecimalField(max_digits=5, decimal_places=4, default="0.20")
    batch_max_orders = models.PositiveSmallIntegerField(default=20)  # batch place / cancel per request
    deadman_min_lead_seconds = models.PositiveIntegerField(default=5)  # HL's scheduleCancel minimum
    trigger_check_interval_ms = models.PositiveIntegerField(default=250)  # TP/SL mark checks, at most
    # an order or close that finds its quote missing while Redis is refilled after a restart waits this
    # long for the feed to rewrite it before answering 503 STALE_PRICE
    quote_refill_wait_ms = models.PositiveIntegerField(default=2000)
    # a cancel that HL answers with a 5xx, a dropped connection or a timeout is sent again (cancel by oid
    # is idempotent) until this long has passed since the first try, before answering 502 VENUE_ERROR
    hl_cancel_retry_ms = models.PositiveIntegerField(default=3000)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="trading_config_min_value_positive", condition=Q(min_order_value__gt=0)
            ),
            models.CheckConstraint(
                name="trading_config_reserve_share_range",
                condition=Q(client_loss_reserve_share__gte=0, client_loss_reserve_share__lte=1),
            ),
        ]

    def __str__(self) -> str:
        return "trading config"


class FeeSchedule(models.Model):
    """Fees per route (spec 02): defaults mirror HL tier 0, plus a builder markup on HL-routed orders."""

    route = models.CharField(max_length=12, unique=True)  # INTERNAL / HYPERLIQUID
    taker_rate = models.DecimalField(max_digits=8, decimal_places=6, default="0.000450")
    maker_rate = models.DecimalField(max_digits=8, decimal_places=6, default="0.000150")
    markup_rate = models.DecimalField(max_digits=8, decimal_places=6, default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="fee_rates_sane",
                condition=Q(
                    taker_rate__gte=0,
                    taker_rate__lt="0.01",
                    maker_rate__gte=0,
                    maker_rate__lt="0.01",
                    markup_rate__gte=0,
                    markup_rate__lt="0.01",
                ),
            )
        ]

    def __str__(self) -> str:
        return f"fees {self.route}"


class Side(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"


class Source(models.TextChoices):
    INTERNAL = "INTERNAL", "Internal (B-book)"
    HYPERLIQUID = "HYPERLIQUID", "Hyperliquid"


class MarginMode(models.TextChoices):
    ISOLATED = "ISOLATED", "Isolated"
    CROSS = "CROSS", "Cross"


class Order(models.Model):
    class Type(models.TextChoices):
        MARKET = "MARKET", "Market"
        LIMIT = "LIMIT", "Limit"

    class Tif(models.TextChoices):
        GTC = "GTC", "Good till cancelled"
        IOC = "IOC", "Immediate or cancel"
        ALO = "ALO", "Add liquidity only"

    class Status(models.TextChoices):
        NEW = "NEW", "New"
        ACCEPTED = "ACCEPTED", "Accepted"
        OPEN = "OPEN", "Open"
        PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
        FILLED = "FILLED", "Filled"
        CANCELLED = "CANCELLED", "Cancelled"
        REJECTED = "REJECTED", "Rejected"
        EXPIRED = "EXPIRED", "Expired"
        ERROR = "ERROR", "Error"

    TERMINAL = frozenset({"FILLED", "CANCELLED", "REJECTED", "EXPIRED", "ERROR"})

    # no index of its own: the composite indexes below lead with it
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    request_hash = models.CharField(max_length=64)
    asset = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=6, choices=Type.choices)
    size = size_field()
    limit_price = price_field(null=True, blank=True)
    leverage = models.PositiveSmallIntegerField()
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices)
    reduce_only = models.BooleanField(default=False)
    tif = models.CharField(max_length=3, choices=Tif.choices, default=Tif.GTC)
    slippage_bps = models.PositiveIntegerField(null=True, blank=True)
    position = models.ForeignKey(
        "Position",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        help_text="for closes / reduce-only: the position being reduced",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    route = models.CharField(max_length=12, choices=Source.choices, null=True, blank=True)
    filled_size = size_field(default=0)
    avg_fill_price = price_field(null=True, blank=True)
    hold_amount = money_field(default=0)
    fee_total = money_field(default=0)
    reference_price = price_field(null=True, blank=True, help_text="mark at acceptance (margin estimate)")
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    hl_oid = models.BigIntegerField(null=True, blank=True, unique=True)
    cloid = models.CharField(max_length=34, null=True, blank=True)  # unique: order_cloid_unique
    hl_limit_price = price_field(
        null=True, blank=True, help_text="the price sent to HL (IOC at mid ± slippage for market)"
    )
    hl_submitted_at = models.DateTimeField(
        null=True, blank=True, help_text="set (and committed) before the request leaves"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_order_id"], name="order_client_id_unique_per_user"
            ),
            # a constraint, not ``unique=True``: that would add a second, pattern-matching index that no
            # query uses and every insert pays for
            models.UniqueConstraint(fields=["cloid"], name="order_cloid_unique"),
            models.CheckConstraint(name="order_size_positive", condition=Q(size__gt=0)),
            models.CheckConstraint(
                name="order_filled_le_size",
                condition=Q(filled_size__gte=0, filled_size__lte=models.F("size")),
            ),
            models.CheckConstraint(name="order_hold_non_negative", condition=Q(hold_amount__gte=0)),
            models.CheckConstraint(
                name="order_limit_has_price", condition=Q(order_type="MARKET") | Q(limit_price__gt=0)
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"]),
            models.Index(fields=["user", "asset", "-id"]),
            models.Index(fields=["user", "status", "-id"]),
            # the internal limit-order queue: resting INTERNAL orders by asset and price
            models.Index(
                fields=["asset", "side", "limit_price"],
                name="order_internal_queue_idx",
                condition=Q(route="INTERNAL", status__in=["OPEN", "PARTIALLY_FILLED"]),
            ),
            models.Index(
                fields=["expires_at"],
                name="order_expiry_idx",
                condition=Q(status__in=["OPEN", "PARTIALLY_FILLED"]),
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.pk} {self.side} {self.size} {self.asset} ({self.status})"

    @property
    def remaining(self):  # type: ignore[no-untyped-def]
        return self.size - self.filled_size


class OrderEvent(models.Model):
    """Every status transition of an order, with its time (spec 02 lifecycle)."""

    # indexed by (order, id) below
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events", db_index=False)
    status = models.CharField(max_length=16)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["order", "id"])]

    def __str__(self) -> str:
        return f"order {self.order_id} → {self.status}"


class Position(models.Model):
    """A user's open position per (user, asset, source, margin mode); one-way (netted) like HL.

    ``isolated_margin`` mirrors the ledger account ``isolated_margin``/``position:<id>`` (written in the
    same transaction; reconciliation checks they agree). ``liquidation_price`` is the displayed value,
    recomputed after every fill, funding settlement and margin change."""

    class Direction(models.TextChoices):
        LONG = "LONG", "Long"
        SHORT = "SHORT", "Short"

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        CLOSED = "CLOSED", "Closed"
        LIQUIDATED = "LIQUIDATED", "Liquidated"

    # indexed by (user, status) below
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="positions", db_index=False
    )
    asset = models.CharField(max_length=20)
    source = models.CharField(max_length=12, choices=Source.choices)
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices)
    direction = models.CharField(max_length=5, choices=Direction.choices)
    size = size_field()
    entry_price = price_field()
    leverage = models.PositiveSmallIntegerField()
    isolated_margin = money_field(default=0)
    liquidation_price = price_field(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    realized_pnl = money_field(default=0)
    fees_paid = money_field(default=0)
    cum_funding_all_time = money_field(default=0)
    cum_funding_since_open = money_field(default=0)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "asset", "source", "margin_mode"],
                condition=Q(status="OPEN"),
                name="position_one_open_per_key",
            ),
            models.CheckConstraint(name="position_size_non_negative", condition=Q(size__gte=0)),
            models.CheckConstraint(
                name="position_open_has_size", condition=~Q(status="OPEN") | Q(size__gt=0)
            ),
            models.CheckConstraint(
                name="position_isolated_margin_non_negative", condition=Q(isolated_margin__gte=0)
            ),
        ]
        indexes = [
            models.Index(fields=["user", "status"]),
            models.Index(fields=["asset", "source", "status"]),
            # funding: positions closed since an HL funding instant still settle it
            models.Index(
                fields=["closed_at"], name="position_closed_at", condition=Q(closed_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.size} {self.asset} {self.source}/{self.margin_mode} ({self.status})"


class Fill(models.Model):
    class Liquidity(models.TextChoices):
        TAKER = "TAKER", "Taker"
        MAKER = "MAKER", "Maker"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills", null=True, blank=True)
    # indexed by (user, -id) below
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="fills", db_index=False
    )
    position = models.ForeignKey(Position, on_delete=models.PROTECT, related_name="fills")
    asset = models.CharField(max_length=20)
    source = models.CharField(max_length=12, choices=Source.choices)
    side = models.CharField(max_length=4, choices=Side.choices)
    size = size_field()
    price = price_field()
    liquidity = models.CharField(max_length=5, choices=Liquidity.choices)
    fee = money_field()
    fee_rate = models.DecimalField(max_digits=8, decimal_places=6)
    realized_pnl = money_field(default=0)
    closed_size = size_field(default=0)
    is_liquidation = models.BooleanField(default=False)
    hl_fill_price = price_field(null=True, blank=True)
    hl_fee = money_field(null=True, blank=True)
    hl_tid = models.BigIntegerField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(name="fill_size_positive", condition=Q(size__gt=0)),
            models.CheckConstraint(name="fill_price_positive", condition=Q(price__gt=0)),
        ]
        indexes = [models.Index(fields=["user", "-id"]), models.Index(fields=["asset", "-id"])]

    def __str__(self) -> str:
        return f"fill {self.pk} {self.side} {self.size}@{self.price} {self.asset}"


class LeverageSetting(models.Model):
    """The leverage a user chose for an asset and margin mode (used by the next orders)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    asset = models.CharField(max_length=20)
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices)
    leverage = models.PositiveSmallIntegerField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "asset", "margin_mode"], name="leverage_setting_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.asset} {self.margin_mode} {self.leverage}x"


class HLAccount(models.Model):
    """One of the platform's Hyperliquid accounts (spec 05: a trading and a hedge account). Orders are
    signed by an approved agent (API wallet) whose key is encrypted at rest; state is queried by the
    master address. Environment variables override these rows in production (see ``trading.venues.hl``)."""

    class Name(models.TextChoices):
        TRADING = "trading", "Trading account"
        HEDGE = "hedge", "Hedge account"

    name = models.CharField(max_length=10, choices=Name.choices, unique=True)
    master_address = models.CharField(max_length=42)
    agent_address = models.CharField(max_length=42)
    agent_key_encrypted = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"HL {self.name} account {self.master_address}"


class HLAccountSnapshot(models.Model):
    """An HL account as HL reported it (``clearinghouseState``), for health thresholds and the console."""

    account = models.CharField(max_length=10)
    account_value = money_field()
    total_margin_used = money_field()
    maintenance_margin_used = money_field()
    withdrawable = money_field()
    total_notional = money_field()
    margin_ratio = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="account value / maintenance margin used; null when no position",
    )
    positions = models.JSONField(default=list)
    rate_limit = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.account} @ {self.created_at:%H:%M:%S}: value {self.account_value}"


class HLPositionSync(models.Model):
    """Σ users' HYPERLIQUID positions per asset vs the trading account's position (spec 06 issue: every
    5 s and after every reconnect). HL is the source of truth for what HL holds."""

    class Status(models.TextChoices):
        OK = "OK", "OK"
        WARN = "WARN", "Mismatch"
        CRITICAL = "CRITICAL", "Mismatch above threshold"

    asset = models.CharField(max_length=20)
    expected = size_field()
    actual = size_field()
    deviation = size_field()
    deviation_rate = models.DecimalField(max_digits=20, decimal_places=8)
    status = models.CharField(max_length=8, choices=Status.choices)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["asset", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.asset}: expected {self.expected}, HL {self.actual} ({self.status})"


from trading.orders.parent_models import AlgoChild, AlgoConfig, AlgoOrder  # noqa: E402, F401  (TWAP / split parents)
from trading.orders.trigger_models import ScheduledCancel, TpslOrder  # noqa: E402, F401  (the order tools' tables)
from trading.stream.models import StreamConfig  # noqa: E402, F401  (the trader streams settings)
