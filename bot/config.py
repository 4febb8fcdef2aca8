"""Settings from the environment (``.env``) and the YAML care configuration.

``Settings`` holds process settings and secrets; ``CareConfig`` the business
configuration (brands, departments, routing, sample terms, SLA). Both are built
once in the entry point and passed down. Errors name the setting and never echo
a secret's value.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config_checks import (
    TOKEN_PREFIXES,
    ChannelId,
    GroupId,
    UserId,
    describe,
    is_placeholder,
    yaml_problem,
)
from bot.domain import LANGUAGES, Category
from bot.errors import ConfigError
from bot.sources.config import NoiseConfig, SourceConfig, check_sources

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
#: How the default encoder runs (``bot.classify.encoder``): ``auto`` picks one of the others.
EncoderBackend = Literal["auto", "onnx", "openvino", "torch", "torch-int8"]
class Settings(BaseSettings):
    """Process settings, read from the environment and ``.env``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    database_url: str = "sqlite:///carebot.db"
    carebot_config: Path | None = None
    ingest_token: SecretStr | None = None
    #: When set, ``GET /metrics`` needs ``Authorization: Bearer <token>`` (Prometheus:
    #: ``authorization: {credentials: ...}``); unset, it is open, as Prometheus expects.
    metrics_token: SecretStr | None = None
    carebot_model: str = "default"
    #: How the default encoder runs: ``auto`` (OpenVINO bf16 on CPUs with AMX when it is
    #: installed, else int8 ONNX Runtime), or one of them by name (``torch`` is fp32).
    carebot_encoder_backend: EncoderBackend = "auto"
    carebot_env: str = "production"
    carebot_log_level: str = "INFO"
    #: ``text`` (default) or ``json``: one JSON object per log line.
    carebot_log_format: Literal["text", "json"] = "text"
    #: Messages per second per Slack channel (Slack allows about 1, with short bursts).
    carebot_slack_rate: float = Field(default=1.0, gt=0, le=50)
    #: How long a worker holds a leased queue row; a crashed replica's work is
    #: taken over by the others after this.
    carebot_lease_seconds: float = Field(default=60.0, ge=1, le=3600)

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_ends_with_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        # Never echo the URL: it holds the database password.
        encode = "a password holding / # ? @ or : must be percent-encoded (%2F %23 %3F %40 %3A)"
        parts = urlsplit(value)
        if parts.netloc.count("@") > 1:
            raise ValueError(f"more than one @ before the host: {encode}")
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError(f"the port after the host must be a number; {encode}") from None
        if value.startswith("postgres:"):
            value = "postgresql" + value[len("postgres") :]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    @field_validator("carebot_log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        value = value.strip().upper()
        if not isinstance(logging.getLevelName(value), int):
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        if self.carebot_env == "development":
            return self
        for name in ("slack_bot_token", "slack_signing_secret", "slack_app_token", "ingest_token",
                     "metrics_token"):
            secret = getattr(self, name)
            if secret is not None and is_placeholder(secret.get_secret_value()):
                raise ValueError(f"{name.upper()} is a placeholder; set the real value")
        for name, (prefix, kind) in TOKEN_PREFIXES.items():
            secret = getattr(self, name)
            if secret is not None and not secret.get_secret_value().strip().startswith(prefix):
                raise ValueError(f"{name.upper()} must be {kind} ({prefix}…); another kind "
                                 "of Slack token was given")
        return self

    def require(self, *names: str) -> None:
        """Raise ``ConfigError`` naming every one of ``names`` that is unset."""
        missing = [n.upper() for n in names if getattr(self, n) in (None, "")]
        if missing:
            raise ConfigError(f"missing setting(s): {', '.join(missing)} (environment or .env)")


def load_settings(**overrides: Any) -> Settings:
    """Build ``Settings``, turning validation errors into one readable ``ConfigError``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe(exc, upper=True)) from None


class Department(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ChannelId
    label: str | None = None


class ClassificationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    #: A strong sample-terms hit decides alone unless the model is at least ``threshold``
    #: confident in another category; ``true`` lets strong hits win even then.
    rules_always_win: bool = False


class Brand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    queries: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=lambda: list(LANGUAGES))


class DigestConfig(BaseModel):
    """When and where the scheduled digests go (local times in ``timezone``)."""

    model_config = ConfigDict(extra="forbid")

    daily_enabled: bool = True
    daily_time: str = "08:30"
    #: Channel for the global daily newsletter; ``None`` posts none.
    daily_channel: ChannelId | None = None
    #: Also post each department's newsletter into its own channel.
    daily_per_department: bool = False
    weekly_enabled: bool = True
    weekly_day: str = "mon"
    weekly_time: str = "09:00"
    #: Channel for the weekly leadership digest; ``None`` posts none.
    weekly_channel: ChannelId | None = None
    top_themes: int = Field(default=5, ge=1, le=20)
    notable: int = Field(default=5, ge=0, le=20)

    @field_validator("daily_time", "weekly_time", mode="before")
    @classmethod
    def _sexagesimal(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 8:30 as the base-60 integer 510: read it back.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return f"{value // 60}:{value % 60:02d}"
        return value

    @field_validator("daily_time", "weekly_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        hour, _, minute = value.partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise ValueError(f"expected a local time HH:MM, got {value!r}")
        return f"{int(hour):02d}:{int(minute):02d}"

    @field_validator("weekly_day")
    @classmethod
    def _weekday(cls, value: str) -> str:
        value = value.strip().lower()[:3]
        if value not in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            raise ValueError("expected a weekday such as mon")
        return value


class SpikeConfig(BaseModel):
    """Spike and exception alerts (see ``bot/spikes.py`` for the rule)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Where alerts go; ``None`` means the triage channel.
    channel: ChannelId | None = None
    window_minutes: int = Field(default=5, ge=1, le=120)
    baseline_hours: int = Field(default=24, ge=1, le=24 * 14)
    min_count: int = Field(default=5, ge=1)
    factor: float = Field(default=3.0, ge=1.0)
    z: float = Field(default=3.0, ge=0.0)
    cooldown_minutes: int = Field(default=60, ge=1)
    #: Extra terms watched besides brands and categories.
    terms: list[str] = Field(default_factory=list)
    #: Exception hashtags alert at this absolute count per window, baseline or not.
    exception_min_count: int = Field(default=1, ge=1)
    #: Mentions the baseline period must hold before spikes (not exceptions) alert.
    min_history: int = Field(default=50, ge=0)


class StatsConfig(BaseModel):
    """Manager stats, digests and alerts."""

    model_config = ConfigDict(extra="forbid")

    #: Slack user ids allowed to run ``/care stats``, ``digest`` and ``export``.
    managers: list[UserId] = Field(default_factory=list)
    #: Slack user group ids whose members are managers too.
    manager_groups: list[GroupId] = Field(default_factory=list)
    exception_hashtags: list[str] = Field(default_factory=lambda: ["#brandfail"])
    digests: DigestConfig = Field(default_factory=DigestConfig)
    spikes: SpikeConfig = Field(default_factory=SpikeConfig)


class PriorityWeights(BaseModel):
    """How much each factor counts in the 0-100 priority score (see ``bot/priority.py``).

    Only the ratios matter: the score is the weighted mean of factors in [0, 1].
    """

    model_config = ConfigDict(extra="forbid")

    tier: float = Field(default=30, ge=0)
    watch: float = Field(default=25, ge=0)
    reach: float = Field(default=15, ge=0)
    reputation: float = Field(default=10, ge=0)
    category: float = Field(default=12, ge=0)
    sentiment: float = Field(default=8, ge=0)


def _default_tiers() -> dict[str, float]:
    return {"platinum": 1.0, "gold": 0.75, "silver": 0.5, "bronze": 0.25}


def _default_category_factors() -> dict[Category, float]:
    return {Category.FRAUD: 1.0, Category.CASE: 0.9, Category.RANT: 0.7, Category.LEAD: 0.6,
            Category.QUERY: 0.5, Category.RFE: 0.3, Category.RAVE: 0.2, Category.NOISE: 0.0}


def _default_watch_lists() -> dict[str, float]:
    return {"mvp": 1.0, "big_customer": 1.0, "influencer": 0.8}


def _lowered(value: dict[str, Any]) -> dict[str, Any]:
    """Tier and list names as carebot stores them (lower case: imported tiers and
    ``/care watch`` lists are); two keys that differ only in case are refused."""
    lowered = {str(k).strip().lower(): v for k, v in value.items()}
    if len(lowered) != len(value):
        raise ValueError("names must differ by more than upper/lower case")
    return lowered


class PriorityConfig(BaseModel):
    """Priority score: weights, factor tables, and when a mention is announced."""

    model_config = ConfigDict(extra="forbid")

    weights: PriorityWeights = Field(default_factory=PriorityWeights)
    #: Customer value tier -> factor in [0, 1]; tiers not listed count 0.
    tiers: dict[str, float] = Field(default_factory=_default_tiers)

    _lower_tiers = field_validator("tiers")(_lowered)
    #: Category -> factor in [0, 1].
    categories: dict[Category, float] = Field(default_factory=_default_category_factors)
    #: Followers at which reach counts fully (reach is scored on a log scale).
    reach_full: int = Field(default=100_000, ge=10)
    #: Negative mentions at or above this score are announced in ``alert_channel``.
    alert_threshold: int = Field(default=60, ge=0, le=100)
    #: Where high-priority negative mentions and SLA breaches are announced.
    alert_channel: ChannelId | None = None


#: A first-response target: at least a minute (0 would breach every mention at once).
Minutes = Annotated[int, Field(ge=1)]


class SlaConfig(BaseModel):
    """First-response targets and what happens as they run out.

    The target for a mention is ``tiers[tier][category]`` when set, else
    ``sla_minutes[category]`` (top level), else 5 minutes for cases.
    """

    model_config = ConfigDict(extra="forbid")

    #: Customer tier -> category -> minutes (overrides ``sla_minutes``).
    tiers: dict[str, dict[Category, Minutes]] = Field(default_factory=dict)
    #: Fraction of the target at which the warning goes out.
    warn_at: float = Field(default=0.75, gt=0.0, lt=1.0)
    #: How often the SLA check runs.
    check_seconds: int = Field(default=60, ge=10, le=3600)
    #: Slack user group id (``S...``) pinged on warnings and breaches.
    oncall_group: GroupId | None = None
    #: Entitled escalation: a watched author, or a customer in one of
    #: ``entitled_tiers``, unanswered this long is escalated (Social 911) once...
    entitled_escalation_minutes: int = Field(default=15, ge=1)
    entitled_tiers: list[str] = Field(default_factory=lambda: ["platinum", "gold"])
    #: ...but only when the mention's priority is at least this (see docs/PRIORITY_SLA.md),
    escalation_min_priority: int = Field(default=40, ge=0, le=100)
    #: ...it is one of these categories, and its sentiment is not positive: Social 911
    #: is for a key customer who needs help, never for their praise or a suggestion.
    escalation_categories: list[Category] = Field(
        default_factory=lambda: [Category.CASE, Category.RANT, Category.FRAUD, Category.QUERY])
    #: Severity of automatic escalations (``sev1``..``sev3``).
    escalation_severity: str = Field(default="sev2", pattern=r"^sev[1-3]$")

    _lower_tiers = field_validator("tiers")(_lowered)

    @field_validator("entitled_tiers")
    @classmethod
    def _lower_entitled(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


class WatchConfig(BaseModel):
    """Watch lists: who may change them, and how much each list weighs."""

    model_config = ConfigDict(extra="forbid")

    #: Slack user ids allowed to ``/care watch add|remove``.
    admins: list[UserId] = Field(default_factory=list)
    #: List name -> factor in [0, 1] for the priority score.
    lists: dict[str, float] = Field(default_factory=_default_watch_lists)
    #: Factor of a custom list not named in ``lists``.
    custom_factor: float = Field(default=0.6, ge=0.0, le=1.0)

    _lower_lists = field_validator("lists")(_lowered)


class CustomerLookupConfig(BaseModel):
    """Optional CRM lookup: ``GET url?source=..&handle=..`` -> ``{"customer_id", "tier"}``."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    #: Re-ask the CRM about an author at most this often.
    refresh_hours: int = Field(default=24, ge=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value


class AttentionConfig(BaseModel):
    """Priority, SLA, watch lists, customer lookup and post-engagement monitoring."""

    model_config = ConfigDict(extra="forbid")

    priority: PriorityConfig = Field(default_factory=PriorityConfig)
    sla: SlaConfig = Field(default_factory=SlaConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    customer_lookup: CustomerLookupConfig = Field(default_factory=CustomerLookupConfig)
    #: After an engagement, the author's new mentions are threaded under the
    #: engaged card for this many days.
    monitoring_days: int = Field(default=7, ge=0, le=90)


class EscalationConfig(BaseModel):
    """Social 911: where escalations are posted, who is pinged, where cases are opened."""

    model_config = ConfigDict(extra="forbid")

    #: Channel for escalation posts; ``None`` posts none (the card still shows it).
    channel: ChannelId | None = None
    #: Slack user group id (``S...``) pinged in the escalation post.
    user_group: GroupId | None = None
    #: Outbound CRM webhook that opens a case; ``None`` opens none.
    crm_webhook_url: str | None = None
    #: Name of the environment variable holding the webhook's HMAC secret.
    crm_secret_env: str = "CAREBOT_CRM_SECRET"
    crm_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("crm_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value


class PermissionsConfig(BaseModel):
    """Who may do what: Slack user ids (``U...``/``W...``) or user group ids (``S...``).

    An empty list lets everyone do that action; ``admin`` may do every action.
    """

    model_config = ConfigDict(extra="forbid")

    escalate: list[str] = Field(default_factory=list)
    resolve: list[str] = Field(default_factory=list)
    admin: list[str] = Field(default_factory=list)

    @field_validator("escalate", "resolve", "admin")
    @classmethod
    def _slack_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item or item[0] not in "UWS" or not item.isalnum():
                raise ValueError(f"{item!r} is not a Slack user id (U...) or user group id (S...)")
        return value


class WorkflowConfig(BaseModel):
    """Engagement workflow on the cards (escalation, permissions)."""

    model_config = ConfigDict(extra="forbid")

    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    permissions: PermissionsConfig = Field(default_factory=PermissionsConfig)


class CareConfig(BaseModel):
    """The business configuration (``CAREBOT_CONFIG`` YAML)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    brands: list[Brand] = Field(default_factory=list)
    departments: dict[str, Department]
    routing: dict[Category, str | None]
    triage_channel: ChannelId
    classification: ClassificationConfig = Field(default_factory=ClassificationConfig)
    sample_terms: dict[Category, dict[str, list[str]]] = Field(default_factory=dict)
    sla_minutes: dict[Category, Minutes] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(default_factory=list)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    workflow: WorkflowConfig = Field(default_factory=WorkflowConfig)
    attention: AttentionConfig = Field(default_factory=AttentionConfig)
    stats: StatsConfig = Field(default_factory=StatsConfig)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _sources_fit(self) -> CareConfig:
        check_sources(self.sources, [brand.name for brand in self.brands])
        return self

    @model_validator(mode="after")
    def _routes_to_known_departments(self) -> CareConfig:
        for category, department in self.routing.items():
            if department is not None and department not in self.departments:
                raise ValueError(
                    f"routing.{category.value} names department {department!r}, "
                    f"which is not under departments"
                )
        return self

    def channel_for(self, category: Category) -> str | None:
        """The channel a category routes to, or ``None`` when it is not posted."""
        department = self.routing.get(category)
        return None if department is None else self.departments[department].channel

    def department_for_channel(self, channel: str) -> str | None:
        for name, department in self.departments.items():
            if department.channel == channel:
                return name
        return None


DEFAULT_CONFIG_RESOURCE = "default_config.yml"


def load_care_config(path: Path | None) -> CareConfig:
    """Load the YAML care configuration, or the shipped default when ``path`` is ``None``."""
    if path is None:
        text = resources.files("bot.data").joinpath(DEFAULT_CONFIG_RESOURCE).read_text("utf-8")
        where = "the built-in default config"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"CAREBOT_CONFIG: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"CAREBOT_CONFIG ({path}): not UTF-8 text (byte {exc.start}); "
                              f"save it as UTF-8") from None
        where = f"CAREBOT_CONFIG ({path})"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    try:
        return CareConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {describe(exc, model=CareConfig)}") from None
