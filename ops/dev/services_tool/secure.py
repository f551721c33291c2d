"""The opt-in SASL_SSL listener (KAFKA_SECURE=1): its TLS material, its SCRAM users, and the
broker and client settings that use them.

Made once per SERVICES_HOME under `kafka-secure/` (mode 700, files 600) and kept across
restarts: a throwaway CA, the broker's key and certificate for 127.0.0.1 and localhost, and
per SCRAM user (`Config.scram_users`, a list of data) a random password and a Java client
properties file. The users are written into the cluster metadata when the storage is
formatted (`--add-scram`); storage formatted without them gets them through ConfigCommand
on the PLAINTEXT listener, which the probe, the controller link and the tools keep using.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ops.dev.services_tool.config import Config, ScramUser
from ops.dev.services_tool.system import ServicesError, log, need, output, run_logged

MECHANISM = "SCRAM-SHA-512"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required"


# KRaft's authorizer: what no ACL allows is denied (`allow.everyone.if.no.acl.found`
# defaults to false). The PLAINTEXT and CONTROLLER listeners on loopback authenticate nobody
# (User:ANONYMOUS): the nodes' own links, the readiness probe and the admin tools use them,
# so that principal is the super user. Every client of the pipeline logs in on SASL_SSL as
# its role and gets the role's ACLs (`store-publish acl apply`). A real cluster authenticates
# its inter-broker listener too; docs/security.md says how this setup differs.
def broker_properties(config: Config) -> dict[str, str]:
    """The SASL_SSL listener's settings (its address is in the node's `listeners`) and the
    authorizer."""
    return {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
        # The credentials live in the cluster metadata: the broker's login takes no options.
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{_SCRAM_LOGIN};",
        # Key (unencrypted PKCS#8) and chain in one PEM; clients log in with SCRAM, not
        # certificates.
        "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
        "listener.name.sasl_ssl.ssl.keystore.location": str(keystore(config)),
        "listener.name.sasl_ssl.ssl.client.auth": "none",
        "listener.name.sasl_ssl.ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
    }


def cafile(config: Config) -> Path:
    return config.secure_dir / "ca.pem"


def keystore(config: Config) -> Path:
    return config.secure_dir / "broker-keystore.pem"


def user_file(config: Config, user: ScramUser, kind: str) -> Path:
    """The user's `password`, or its Java client `properties` (for `kafka-tool ...
    --command-config`)."""
    return config.secure_dir / "users" / f"{user.name}.{kind}"


def password(config: Config, user: ScramUser) -> str:
    try:
        return user_file(config, user, "password").read_text().strip()
    except OSError:
        raise ServicesError(
            f"no SASL_SSL material in {config.secure_dir}: run KAFKA_SECURE=1 ops/dev/services up"
        ) from None


def client_properties(config: Config, user: ScramUser, secret: str) -> str:
    lines = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": MECHANISM,
        "sasl.jaas.config": f'{_SCRAM_LOGIN} username="{user.name}" password="{secret}";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(cafile(config)),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def format_arguments(config: Config) -> list[str]:
    """`StorageTool format` arguments that put every SCRAM user in the new metadata."""
    arguments: list[str] = []
    for user in config.scram_users:
        secret = password(config, user)
        arguments += ["--add-scram", f"{MECHANISM}=[name={user.name},password={secret}]"]
    return arguments


def ensure_material(config: Config) -> None:
    """The CA and broker certificate (once), then a password and client file per user."""
    if not keystore(config).exists():
        _make_tls(config)
    for user in config.scram_users:
        if not user_file(config, user, "password").exists():
            # hex: nothing that `[name=...,password=...]` or JAAS quoting would mangle
            _write_private(user_file(config, user, "password"), secrets.token_hex(24) + "\n")
        properties = client_properties(config, user, password(config, user))
        _write_private(user_file(config, user, "properties"), properties)


def _write_private(path: Path, text: str) -> None:
    """`text` in `path`, mode 600, in a directory of mode 700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)


def certificate(name: str, subject: str, days: int, *extensions: str) -> list[str]:
    """openssl's arguments for a new key and a certificate for it, `name`.key and `name`.pem
    in the directory it runs in: self-signed, or signed with `-CA ... -CAkey ...` added."""
    new = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days)]
    files = ["-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", subject]
    return [*new, *files, *(part for extension in extensions for part in ("-addext", extension))]


def ca_request(subject: str, *, days: int) -> list[str]:
    """openssl's arguments for a self-signed CA named `subject`: ca.key and ca.pem."""
    usage = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign")
    return certificate("ca", subject, days, *usage)


def _make_tls(config: Config) -> None:
    """A throwaway CA and a broker certificate it signed, for 127.0.0.1 and localhost (the
    certificate is made and signed in one step: OpenSSL 3)."""
    openssl = need("openssl", "KAFKA_SECURE=1 generates a CA with it")
    log(f"kafka: generating a throwaway CA and broker certificate in {config.secure_dir}")
    tmp = config.secure_dir.with_name(f"{config.secure_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    broker = certificate(
        *("broker", "/CN=127.0.0.1", 825, "basicConstraints=critical,CA:FALSE"),
        *("keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
    )
    ca = ca_request("/CN=store-publish ops-services local CA", days=3650)
    for step in (ca, [*broker, "-CA", "ca.pem", "-CAkey", "ca.key"]):
        what = "kafka: generating the TLS material"
        run_logged([openssl, *step], config.logs / "kafka-secure.log", what, cwd=tmp)
    chain = "".join((tmp / name).read_text() for name in ("broker.key", "broker.pem", "ca.pem"))
    (tmp / "broker-keystore.pem").write_text(chain)
    for path in tmp.iterdir():
        path.chmod(0o600)
    shutil.rmtree(config.secure_dir, ignore_errors=True)
    tmp.rename(config.secure_dir)


def _users_note(config: Config, cluster_id: str) -> tuple[Path, str]:
    """Where the note is kept that the metadata of `cluster_id` holds every user's current
    password (written when the storage is formatted with them, or they are set), and what
    it says."""
    names = " ".join(user.name for user in config.scram_users)
    return config.secure_dir / "scram-users", f"{cluster_id} {names}\n"


def record_users(config: Config, cluster_id: str) -> None:
    path, note = _users_note(config, cluster_id)
    path.write_text(note)


def users_recorded(config: Config, cluster_id: str) -> bool:
    path, note = _users_note(config, cluster_id)
    return path.exists() and path.read_text() == note


def apply_acls(config: Config) -> None:
    """The roles' ACLs for the settings in the environment (topic names, consumer group),
    granted by the project's own command through the super user's PLAINTEXT listener."""
    command = config.root / ".venv" / "bin" / "store-publish"
    if not command.exists():
        log(f"kafka: no {command}: run `make setup`, then `store-publish acl apply`")
        return
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KAFKA_SASL_", "KAFKA_SSL_", "KAFKA_SECURITY_"))
    }
    environ["KAFKA_BOOTSTRAP_SERVERS"] = config.bootstrap_servers
    code, said = output([str(command), "acl", "apply"], environ)
    last = said.splitlines()[-1] if said else ""
    if code != 0:
        raise ServicesError(f"kafka: applying the roles' ACLs failed: {last}")
    log(f"kafka: {last or 'ACLs applied'}")
