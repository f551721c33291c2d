"""The roles' Kafka ACLs (`ops.runtime.roles.kafka_grants`): listed, printed as Kafka's own
`kafka-acls.sh` commands for a platform team, and applied through librdkafka's admin API
(aiokafka has no ACL API).

Applying converges: the ACLs a principal lacks are created, the ones it has are left, and
with `prune` the ones of the same principals that no role grants are deleted. It needs a
principal allowed to alter the cluster's ACLs (a super user): in the local secure setup, the
PLAINTEXT listener on loopback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from ops.runtime.roles import (
    CLUSTER,
    KafkaGrant,
    Operation,
    PatternType,
    Role,
    kafka_grants,
    kafka_username,
)
from ops.runtime.roles import ResourceType as GrantResource
from schemas.settings import Settings

# Every ACL of the project allows from any host: the principal, not the address, is the
# identity (pods move, and the local setup is all loopback).
HOST = "*"
_TIMEOUT_S = 15.0

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,
}
# `kafka-acls.sh` options naming each kind of resource.
_OPTION = {
    "topic": "--topic",
    "group": "--group",
    "transactional_id": "--transactional-id",
    "cluster": "--cluster",
}


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW entry: `principal` may do `operation` on the grant's resource."""

    role: Role
    principal: str
    resource: GrantResource
    name: str
    pattern: PatternType
    operation: Operation

    @property
    def grant(self) -> KafkaGrant:
        """This one operation as a grant of the role's (how grants are described)."""
        return KafkaGrant(self.resource, self.name, self.pattern, (self.operation,))

    @property
    def shown_name(self) -> str:
        return self.grant.shown_name

    def describe(self) -> str:
        return self.grant.describe()


class AclError(RuntimeError):
    """The broker refused or could not be asked; one line for the operator."""


def default_principals() -> dict[Role, str]:
    return {role: f"User:{kafka_username(role)}" for role in Role}


def parse_principals(pairs: Iterable[str]) -> dict[Role, str]:
    """`ROLE=User:NAME` overrides of the default principals; ValueError names a bad one."""
    found = default_principals()
    for pair in pairs:
        role_name, sep, principal = pair.partition("=")
        try:
            role = Role(role_name.strip().lower())
        except ValueError:
            known = ", ".join(role.value for role in Role)
            raise ValueError(
                f"--principal {pair}: no role {role_name!r} (roles: {known})"
            ) from None
        if not sep or ":" not in principal:
            raise ValueError(f"--principal {pair}: expected ROLE=User:NAME")
        found[role] = principal.strip()
    return found


def role_acls(settings: Settings, principals: Mapping[Role, str]) -> list[Acl]:
    """Every ACL of every role, one operation each (Kafka stores them so)."""
    acls: list[Acl] = []
    for role in Role:
        for grant in kafka_grants(role, settings):
            acls += _expand(role, principals[role], grant)
    return sorted(acls)


def _expand(role: Role, principal: str, grant: KafkaGrant) -> list[Acl]:
    name = CLUSTER if grant.resource == "cluster" else grant.name
    return [
        Acl(role, principal, grant.resource, name, grant.pattern, operation)
        for operation in grant.operations
    ]


def acl_commands(acls: Sequence[Acl], bootstrap: str) -> list[str]:
    """The same ACLs as `kafka-acls.sh --add` commands, for a cluster this tool cannot reach."""
    return [
        " ".join(
            [
                f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config admin.properties",
                f"--add --allow-principal {acl.principal} --allow-host '{HOST}'",
                f"--operation {_operation_option(acl.operation)}",
                _OPTION[acl.resource] + ("" if acl.resource == "cluster" else f" '{acl.name}'"),
                f"--resource-pattern-type {acl.pattern}",
            ]
        )
        for acl in acls
    ]


def _operation_option(operation: Operation) -> str:
    # kafka-acls.sh spells operations in CamelCase: DescribeConfigs, AlterConfigs.
    return "".join(part.capitalize() for part in operation.split("_"))


def admin_config(settings: Settings) -> dict[str, str | int | float | bool]:
    """librdkafka's form of `Settings.kafka_client_options`."""
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol.lower(),
        # librdkafka prints every failed connection on stderr; the operator gets one line
        # from the request that failed instead.
        "log_level": 0,
    }
    if settings.kafka_sasl_mechanism is not None:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username or ""
        password = settings.kafka_sasl_password
        config["sasl.password"] = password.get_secret_value() if password else ""
    for key, value in (
        ("ssl.ca.location", settings.kafka_ssl_cafile),
        ("ssl.certificate.location", settings.kafka_ssl_certfile),
        ("ssl.key.location", settings.kafka_ssl_keyfile),
    ):
        if value:
            config[key] = value
    return config


def _binding(acl: Acl) -> AclBinding:
    return AclBinding(
        _RESOURCE[acl.resource],
        acl.name,
        ResourcePatternType[acl.pattern.upper()],
        acl.principal,
        HOST,
        AclOperation[acl.operation],
        AclPermissionType.ALLOW,
    )


@dataclass(frozen=True)
class Applied:
    created: list[Acl]
    present: list[Acl]
    pruned: list[str]


def apply_acls(settings: Settings, acls: Sequence[Acl], *, prune: bool = False) -> Applied:
    """Create what is missing (and with `prune` delete the same principals' other ACLs)."""
    admin = AdminClient(admin_config(settings))
    principals = sorted({acl.principal for acl in acls})
    existing = {_key(b) for p in principals for b in _described(admin, p)}
    wanted = {_key(_binding(acl)): acl for acl in acls}
    missing = [acl for key, acl in wanted.items() if key not in existing]
    if missing:
        futures = admin.create_acls([_binding(acl) for acl in missing])
        for future in futures.values():
            _result(future)
    pruned: list[str] = []
    if prune:
        extra = [b for p in principals for b in _described(admin, p) if _key(b) not in wanted]
        if extra:
            filters = [_as_filter(b) for b in extra]
            for future in admin.delete_acls(filters).values():
                _result(future)
            pruned = [_show(b) for b in extra]
    present = [acl for key, acl in wanted.items() if key in existing]
    return Applied(created=sorted(missing), present=sorted(present), pruned=pruned)


def _described(admin: AdminClient, principal: str) -> list[AclBinding]:
    # None matches any name and any host (the stubs say str; librdkafka takes NULL).
    anything = cast(str, None)
    any_filter = AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        principal,
        anything,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    found = _result(admin.describe_acls(any_filter))
    return list(found) if found else []


_Fields = tuple[ResourceType, str, ResourcePatternType, str, str, AclOperation, AclPermissionType]


def _fields(binding: AclBinding) -> _Fields:
    # The binding's attributes are typed loosely (enum, str or int); they hold the enums.
    return cast(
        _Fields,
        (
            binding.restype,
            binding.name,
            binding.resource_pattern_type,
            binding.principal,
            binding.host,
            binding.operation,
            binding.permission_type,
        ),
    )


def _key(binding: AclBinding) -> tuple[str, ...]:
    return tuple(str(part) for part in _fields(binding))


def _as_filter(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(*_fields(binding))


def _show(binding: AclBinding) -> str:
    return (
        f"{binding.principal} {binding.permission_type} {binding.operation} on "
        f"{binding.restype} {binding.name} ({binding.resource_pattern_type})"
    )


def _result(future: Future[Any]) -> Any:
    try:
        return future.result(timeout=_TIMEOUT_S)
    except KafkaException as error:
        raise AclError(f"kafka: {error.args[0].str()}") from None
    except TimeoutError:
        raise AclError(
            f"Kafka unreachable: no answer about ACLs within {_TIMEOUT_S:.0f}s "
            "(check KAFKA_BOOTSTRAP_SERVERS)"
        ) from None


def revoke_acls(settings: Settings, acls: Sequence[Acl]) -> None:
    """Delete exactly these ACLs (an operator taking a grant back, or a test proving that
    a missing one is named)."""
    admin = AdminClient(admin_config(settings))
    for future in admin.delete_acls([_as_filter(_binding(acl)) for acl in acls]).values():
        _result(future)
