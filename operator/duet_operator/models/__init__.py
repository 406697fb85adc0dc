"""The custom resources' pydantic models: the one source of truth for their schemas.

`make crds` generates crds/*.yaml from these; CI fails when the files drift from them.
"""

from duet_operator.models.backup import (
    DataPlatformBackup,
    DataPlatformBackupSpec,
    DataPlatformBackupStatus,
)
from duet_operator.models.common import API_VERSION, GROUP, VERSION
from duet_operator.models.dataplatform import DataPlatform, DataPlatformSpec, DataPlatformStatus
from duet_operator.models.queryagent import QueryAgent, QueryAgentSpec, QueryAgentStatus
from duet_operator.models.remediation import Remediation, RemediationSpec, RemediationStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "DataPlatform",
    "DataPlatformBackup",
    "DataPlatformBackupSpec",
    "DataPlatformBackupStatus",
    "DataPlatformSpec",
    "DataPlatformStatus",
    "QueryAgent",
    "QueryAgentSpec",
    "QueryAgentStatus",
    "Remediation",
    "RemediationSpec",
    "RemediationStatus",
]
