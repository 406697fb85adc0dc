"""Operator-wide settings, from the environment (the chart sets them) with safe defaults."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from duet_agents.llm.pricing import DEFAULT_LLM_PRICES, LLMPrices
from duet_agents.memory import MemorySettings
from duet_agents.planner.models import PriceTable
from duet_operator.models.dataplatform import AutonomyMode
from duet_operator.render.backup_pod import DEFAULT_CONFIG, BackupConfig
from duet_operator.render.config import RenderConfig


class BackupSettings(BaseModel):
    """The backup pods' settings (`DUET_BACKUP__<FIELD>`): the Jobs of backups, retention's
    and deletion's cleanups, a restore's download step and the S3 WAL sidecar. Defaults are
    the builders' own (render/backup_pod.py)."""

    model_config = ConfigDict(extra="forbid")

    uploader_image: str = Field(
        default=DEFAULT_CONFIG.uploader_image,
        min_length=1,
        description="The AWS CLI image: uploads, S3 cleanups, restore downloads, the S3 WAL"
        " sidecar (a mirror of amazon/aws-cli in a private registry, say).",
    )
    backoff_limit: int = Field(default=DEFAULT_CONFIG.backoff_limit, ge=0)
    active_deadline_seconds: int = Field(default=DEFAULT_CONFIG.active_deadline_seconds, gt=0)
    ttl_seconds_after_finished: int = Field(default=DEFAULT_CONFIG.ttl_seconds_after_finished, ge=0)
    history_limit: int = Field(default=DEFAULT_CONFIG.history_limit, ge=0)
    resources: dict[str, Any] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULT_CONFIG.resources),
        description="Each backup step's container resources (requests, limits).",
    )

    def config(self) -> BackupConfig:
        return BackupConfig(**self.model_dump())


class OperatorSettings(BaseSettings):
    """`DUET_<FIELD>` environment variables; nested ones with `__`:
    DUET_PRICES__CPU_CORE_MONTH_USD=30."""

    model_config = SettingsConfigDict(env_prefix="DUET_", env_nested_delimiter="__")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means all."
    )
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    peering_name: str | None = Field(
        default=None,
        description="kopf peering object shared by the operator's replicas: the one with the "
        "highest priority works, the others stand by. Unset: standalone (one replica).",
    )
    # Every resync re-applies each object of each platform: at 250 platforms and 60 s that is
    # ~45 server-side applies a second of steady load on the API server (measured), so the
    # default is five minutes; deleted or rescaled children are watched and put back at once.
    resync_seconds: float = Field(
        default=300, gt=0, description="How often each platform is re-applied to undo drift."
    )
    apply_retry_seconds: float = Field(default=10, gt=0)
    max_concurrent_reconciles: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Reconciles running at once; the rest queue (duet_reconcile_queue_seconds).",
    )
    planner_timeout_seconds: float = Field(
        default=120,
        gt=0,
        description="A model planner's whole planning (every attempt); then the built-in design.",
    )
    planner_default_models: dict[str, str] = Field(
        default_factory=lambda: {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4.1"},
        description="The model used when spec.planner names a provider but no model.",
    )
    llm_prices: LLMPrices = Field(
        default_factory=LLMPrices,
        description="Token prices added to (or overriding) the built-in table, model by model: "
        '{"models": {"openai": {"my-vllm-model": {"inputUSDPerMTok": 0, "outputUSDPerMTok": 0}}}}',
    )
    autonomy_default_mode: AutonomyMode = Field(
        default=AutonomyMode.RECOMMEND,
        description="The healer's mode for platforms whose spec.autonomy.mode is unset.",
    )
    clickhouse_image: str = RenderConfig.clickhouse_image
    keeper_image: str = RenderConfig.keeper_image
    postgres_image: str = RenderConfig.postgres_image
    postgres_exporter_image: str = RenderConfig.postgres_exporter_image
    duet_image: str = RenderConfig.duet_image
    cluster_domain: str = RenderConfig.cluster_domain
    prices: PriceTable = Field(default_factory=PriceTable)
    backup: BackupSettings = Field(
        default_factory=BackupSettings,
        description="The backup pods: DUET_BACKUP__UPLOADER_IMAGE (the chart's"
        " backup.uploaderImage) and the others of docs/operator.md.",
    )
    memory: MemorySettings = Field(
        default_factory=MemorySettings,
        description="The platform memory (docs/memory.md): DUET_MEMORY__ENABLED, "
        "DUET_MEMORY__URL (sqlite:////var/lib/duet/memory.db in the chart), "
        "DUET_MEMORY__TIMEOUT_SECONDS.",
    )

    def token_prices(self) -> LLMPrices:
        return DEFAULT_LLM_PRICES.merged(self.llm_prices)

    def backup_config(self) -> BackupConfig:
        return self.backup.config()

    def render_config(self) -> RenderConfig:
        return RenderConfig(
            clickhouse_image=self.clickhouse_image,
            keeper_image=self.keeper_image,
            postgres_image=self.postgres_image,
            postgres_exporter_image=self.postgres_exporter_image,
            duet_image=self.duet_image,
            cluster_domain=self.cluster_domain,
        )
