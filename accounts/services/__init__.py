"""Writes for accounts, one module per concept; callers import from here (`from accounts.services import X`).

- `keys`: EA API keys (issue, revoke, rotate)
- `ea_auth`: EA authentication (API key → JWT pair, refresh, access check, refusals)
- `signup`: a tenant's sign-up, its MT5 accounts
- `config`: an account's configuration (EA settings, risk parameters): one `account_config_update`
- `stop`: stop trading, one `account_trading_stop` (the trader's emergency stop, the operators' actions, the risk
  monitor), a whole tenant's stop, trading back on
- `operators`: operators' second factor
"""

from accounts.services.config import (
    CONFIG_SECTIONS,
    EA_SETTING_FIELDS,
    EA_SETTING_UNKNOWN,
    RISK_PARAMETER_FIELDS,
    RISK_PARAMETER_UNKNOWN,
    account_config_update,
    account_ea_settings_update,
    account_risk_parameters_update,
)
from accounts.services.ea_auth import (
    AUTH_ACCOUNT_DISABLED,
    AUTH_BAD_KEY,
    AUTH_RATE_LIMITED,
    AUTH_REVOKED_KEY,
    AUTH_UNKNOWN_ACCOUNT,
    MAX_TOKEN_LENGTH,
    REFRESH_TOKEN_REUSED,
    REFUSAL_REASON_UNKNOWN,
    REFUSAL_RECORD_INTERVAL_S,
    SESSION_ENDED,
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    TOKEN_SCOPE,
    VERIFIED_KEY_TTL_S,
    EAAuthError,
    EAClaims,
    EATokens,
    Refusal,
    ea_access_verify,
    ea_authenticate,
    ea_refusal_record,
    ea_session_end,
    ea_token_refresh,
)
from accounts.services.keys import (
    API_KEY_ALREADY_REVOKED,
    API_KEY_PREFIX,
    KEY_ID_BYTES,
    MAX_API_KEY_LENGTH,
    SECRET_BYTES,
    ApiKeyError,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
)
from accounts.services.operators import operator_totp_enable
from accounts.services.signup import mt5_account_create, tenant_signup
from accounts.services.stop import (
    account_emergency_stop,
    account_positions_close_all,
    account_trading_disable,
    account_trading_start,
    account_trading_stop,
    tenant_emergency_stop,
)

__all__ = [
    "API_KEY_ALREADY_REVOKED",
    "API_KEY_PREFIX",
    "AUTH_ACCOUNT_DISABLED",
    "AUTH_BAD_KEY",
    "AUTH_RATE_LIMITED",
    "AUTH_REVOKED_KEY",
    "AUTH_UNKNOWN_ACCOUNT",
    "CONFIG_SECTIONS",
    "EA_SETTING_FIELDS",
    "EA_SETTING_UNKNOWN",
    "KEY_ID_BYTES",
    "MAX_API_KEY_LENGTH",
    "MAX_TOKEN_LENGTH",
    "REFRESH_TOKEN_REUSED",
    "REFUSAL_REASON_UNKNOWN",
    "REFUSAL_RECORD_INTERVAL_S",
    "RISK_PARAMETER_FIELDS",
    "RISK_PARAMETER_UNKNOWN",
    "SECRET_BYTES",
    "SESSION_ENDED",
    "TOKEN_EXPIRED",
    "TOKEN_INVALID",
    "TOKEN_SCOPE",
    "VERIFIED_KEY_TTL_S",
    "ApiKeyError",
    "EAAuthError",
    "EAClaims",
    "EATokens",
    "Refusal",
    "account_config_update",
    "account_ea_settings_update",
    "account_emergency_stop",
    "account_positions_close_all",
    "account_risk_parameters_update",
    "account_trading_disable",
    "account_trading_start",
    "account_trading_stop",
    "api_key_create",
    "api_key_revoke",
    "api_key_rotate",
    "ea_access_verify",
    "ea_authenticate",
    "ea_refusal_record",
    "ea_session_end",
    "ea_token_refresh",
    "mt5_account_create",
    "operator_totp_enable",
    "tenant_emergency_stop",
    "tenant_signup",
]  # fmt: skip
