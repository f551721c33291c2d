"""`ops/dev/services`: local Kafka (one KRaft node or a cluster of N, optionally with a
SASL_SSL listener) and PostgreSQL on loopback, for development, tests and CI.

The test fixtures use it in process: `Services.from_environ(env).up()`, `.env()`, ...
"""

from ops.dev.services_tool.config import Config, Node, ScramUser
from ops.dev.services_tool.services import Services, Status, client_env
from ops.dev.services_tool.system import ServicesError

__all__ = ["Config", "Node", "ScramUser", "Services", "ServicesError", "Status", "client_env"]
