"""Run-time configuration: per-chain limits (``ChainConfig``) and platform parameters
(``WalletConfig``). Defaults from spec 06; the data migration seeds the rows, and the getters
recreate a missing row from the same defaults. Edits go through ``*_update`` and are audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from wallets.chains import spec
from wallets.models import Chain, ChainConfig, ChainState, WalletConfig


def chain_defaults(chain: str) -> dict[str, Any]:
    return {
        "assets": list(spec.TOKENS[chain]),
        "native_asset": spec.NATIVE[chain],
        "confirmations": spec.CONFIRMATIONS[chain],
        # Arbitrum carries platform capital to and from HL, not user deposits
        "deposits_enabled": chain != Chain.ARBITRUM,
        "withdrawals_enabled": chain != Chain.ARBITRUM,
    }


def known_chain(chain: object) -> str:
    value = str(chain).strip().upper() if isinstance(chain, str) else ""
    if value not in Chain.values:
        raise ApplicationError(ErrorCode.UNKNOWN_CHAIN, f"Unknown chain {chain!r}.", {"chains": Chain.values})
    return value


def chain_config(chain: str) -> ChainConfig:
    chain = known_chain(chain)
    config = ChainConfig.objects.filter(chain=chain).first()
    if config is None:
        config, _ = ChainConfig.objects.get_or_create(chain=chain, defaults=chain_defaults(chain))
    return config


def known_asset(config: ChainConfig, asset: object) -> str:
    if not isinstance(asset, str) or asset.upper() not in config.assets:
        raise ApplicationError(
            ErrorCode.UNKNOWN_ASSET, f"{config.chain} supports {', '.join(config.assets)}.", {"asset": asset}
        )
    return asset.upper()


def wallet_config() -> WalletConfig:
    config = WalletConfig.objects.filter(pk=1).first()
    if config is None:
        config, _ = WalletConfig.objects.get_or_create(pk=1)
    return config


def chain_state(chain: str) -> ChainState:
    state, _ = ChainState.objects.get_or_create(chain=chain)
    return state


def _update(obj: Any, *, changes: dict[str, Any], acting_user: Any, reason: str, object_type: str) -> Any:
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required to change configuration.")
    fields = {f.name for f in obj._meta.concrete_fields} - {"chain", "id", "updated_at"}
    unknown = set(changes) - fields
    if unknown:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Unknown settings.", {"fields": sorted(unknown)})
    before = {k: getattr(obj, k) for k in changes}
    for key, value in changes.items():
        if isinstance(getattr(obj, key), Decimal):
            value = Decimal(str(value))
            if value < 0:
                raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"{key} cannot be negative.")
        setattr(obj, key, value)
    obj.updated_at = timezone.now()
    obj.full_clean()
    obj.save()
    audit_record(
        action=f"wallets.{object_type}.update",
        actor=acting_user,
        object_type=object_type,
        object_id=obj.pk,
        before=before,
        after={k: getattr(obj, k) for k in changes},
        reason=reason,
    )
    return obj


@transaction.atomic
def chain_config_update(*, chain: str, changes: dict[str, Any], acting_user: Any, reason: str) -> ChainConfig:
    config = ChainConfig.objects.select_for_update().get(pk=chain_config(chain).pk)
    return _update(
        config, changes=changes, acting_user=acting_user, reason=reason, object_type="chain_config"
    )


@transaction.atomic
def wallet_config_update(*, changes: dict[str, Any], acting_user: Any, reason: str) -> WalletConfig:
    config = WalletConfig.objects.select_for_update().get(pk=wallet_config().pk)
    return _update(
        config, changes=changes, acting_user=acting_user, reason=reason, object_type="wallet_config"
    )
