"""ops/dev/services' pure parts: settings, node layout, server.properties and env output,
for one node and three, plain and secure. No service runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.dev.services_tool import Config, ServicesError, client_env
from ops.dev.services_tool.cli import run
from ops.dev.services_tool.kafka_config import jvm_options, node_properties, render
from ops.runtime.roles import Role, kafka_username

CHECKOUT = Path("/checkout")


def config(**environ: str) -> Config:
    return Config.from_environ(environ, root=CHECKOUT)


def props(made: Config, node: int = 1) -> dict[str, str]:
    return node_properties(made, made.node(node))


def test_a_single_broker_keeps_the_scripts_defaults_and_unnumbered_paths() -> None:
    made = config()
    (node,) = made.nodes
    assert made.home == CHECKOUT / ".cache"
    assert (node.port, node.controller_port, node.secure_port) == (19092, 19093, 19094)
    assert node.pid_file == CHECKOUT / ".cache" / "kafka.pid"
    assert node.conf == CHECKOUT / ".cache" / "kafka-server.properties"
    assert node.data == CHECKOUT / ".cache" / "kafka-data"
    assert node.logs == CHECKOUT / ".cache" / "logs"
    assert made.pg_port == 15432
    assert made.heap_opts == ("-Xms512m", "-Xmx1g")


def test_cache_wins_over_services_home_for_a_single_broker_only() -> None:
    assert config(CACHE="/a", SERVICES_HOME="/b").home == Path("/a")
    assert config(SERVICES_HOME="/b").home == Path("/b")
    assert config(CACHE="/a", KAFKA_BROKERS="3").home == CHECKOUT / ".cache" / "cluster"


def test_a_cluster_has_its_own_home_ports_and_numbered_node_files() -> None:
    made = config(KAFKA_BROKERS="3")
    assert [n.port for n in made.nodes] == [19292, 19293, 19294]
    assert [n.controller_port for n in made.nodes] == [19302, 19303, 19304]
    assert [n.secure_port for n in made.nodes] == [19312, 19313, 19314]
    assert made.node(2).pid_file == made.home / "kafka-2.pid"
    assert made.node(2).data == made.home / "kafka-data-2"
    assert made.node(2).logs == made.home / "logs" / "kafka-2"
    assert made.pg_port == 15632
    assert made.heap_opts == ("-Xms256m", "-Xmx512m")
    assert made.bootstrap_servers == "127.0.0.1:19292,127.0.0.1:19293,127.0.0.1:19294"


def test_ports_given_move_every_node() -> None:
    made = config(
        KAFKA_BROKERS="3", KAFKA_PORT="20000", KAFKA_CONTROLLER_PORT="20100", PG_PORT="16000"
    )
    assert [n.port for n in made.nodes] == [20000, 20001, 20002]
    assert [n.controller_port for n in made.nodes] == [20100, 20101, 20102]
    assert made.database_url == "postgresql://postgres@127.0.0.1:16000/store_publish"


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"KAFKA_PORT": "x"}, "KAFKA_PORT=x"),
        ({"KAFKA_BROKERS": "0"}, "at least one"),
    ],
)
def test_a_setting_that_makes_no_sense_is_one_error(
    environ: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ServicesError, match=complaint):
        config(**environ)


def test_there_is_no_node_beyond_the_cluster() -> None:
    with pytest.raises(ServicesError, match="no node 4"):
        config(KAFKA_BROKERS="3").node(4)


def test_a_single_node_is_its_own_quorum_with_one_replica_of_everything() -> None:
    found = props(config())
    assert found["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert found["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert found["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    for key in ("default.replication.factor", "transaction.state.log.replication.factor"):
        assert found[key] == "1"
    assert found["min.insync.replicas"] == found["transaction.state.log.min.isr"] == "1"
    assert found["log.dirs"] == str(CHECKOUT / ".cache" / "kafka-data")
    assert not any(key.startswith("listener.name.sasl_ssl") for key in found)


def test_three_nodes_share_one_quorum_and_keep_three_replicas_with_min_isr_two() -> None:
    made = config(KAFKA_BROKERS="3")
    every = [props(made, n) for n in (1, 2, 3)]
    voters = "1@127.0.0.1:19302,2@127.0.0.1:19303,3@127.0.0.1:19304"
    assert {p["controller.quorum.voters"] for p in every} == {voters}
    assert [p["node.id"] for p in every] == ["1", "2", "3"]
    assert every[1]["listeners"] == "PLAINTEXT://127.0.0.1:19293,CONTROLLER://127.0.0.1:19303"
    assert every[1]["log.dirs"] == str(made.home / "kafka-data-2")
    for found in every:
        assert found["offsets.topic.replication.factor"] == "3"
        assert found["min.insync.replicas"] == found["transaction.state.log.min.isr"] == "2"
        assert found["unclean.leader.election.enable"] == "false"
        assert found["num.io.threads"] == "2"


def test_secure_adds_a_sasl_ssl_listener_beside_plaintext_on_every_node() -> None:
    made = config(KAFKA_BROKERS="3", KAFKA_SECURE="1")
    found = props(made, 3)
    assert found["listeners"] == (
        "PLAINTEXT://127.0.0.1:19294,CONTROLLER://127.0.0.1:19304,SASL_SSL://127.0.0.1:19314"
    )
    assert found["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:19294,SASL_SSL://127.0.0.1:19314"
    )
    assert found["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    )
    assert found["inter.broker.listener.name"] == "PLAINTEXT"
    assert found["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert found["listener.name.sasl_ssl.ssl.keystore.location"] == str(
        made.home / "kafka-secure" / "broker-keystore.pem"
    )


def test_the_rendered_file_holds_every_property_once() -> None:
    made = config(KAFKA_SECURE="1")
    lines = [line for line in render(made, made.node(1)).splitlines() if "=" in line]
    keys = [line.split("=", 1)[0] for line in lines if not line.startswith("#")]
    assert len(keys) == len(set(keys)) == len(props(made))


def test_heap_and_gc_threads_are_shared_out_between_nodes() -> None:
    one = config(KAFKA_HEAP_OPTS="-Xmx2g")
    assert jvm_options(one, one.node(1))[0] == "-Xmx2g"
    three = config(KAFKA_BROKERS="3")
    options = jvm_options(three, three.node(2))
    assert "-XX:ParallelGCThreads=1" in options
    assert f"-Dkafka.logs.dir={three.home / 'logs' / 'kafka-2'}" in options


def test_there_is_one_scram_user_per_role_named_by_the_roles_module() -> None:
    made = config(KAFKA_SECURE="1")
    assert [(u.name, u.role) for u in made.scram_users] == [
        (kafka_username(role), role.value) for role in Role
    ]
    assert len({u.name for u in made.scram_users}) == len(Role) == 7


def test_the_secure_broker_denies_what_no_acl_allows_and_only_anonymous_loopback_is_super() -> None:
    made = config(KAFKA_SECURE="1")
    properties = node_properties(made, made.node(1))
    assert properties["authorizer.class.name"].endswith("StandardAuthorizer")
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["super.users"] == "User:ANONYMOUS"
    # ANONYMOUS is only ever the PLAINTEXT listeners' principal, bound to loopback.
    assert all("127.0.0.1" in listener for listener in properties["listeners"].split(","))
    assert "authorizer.class.name" not in node_properties(config(), config().node(1))
    # A cluster is N of the same node: each authorizes alike, its listeners on loopback.
    cluster = config(KAFKA_SECURE="1", KAFKA_BROKERS="3")
    for node in cluster.nodes:
        each = node_properties(cluster, node)
        assert each["authorizer.class.name"] == properties["authorizer.class.name"]
        assert each["super.users"] == "User:ANONYMOUS"
        assert each["inter.broker.listener.name"] == "PLAINTEXT"
        assert f"SASL_SSL://127.0.0.1:{node.secure_port}" in each["listeners"]


def test_env_names_the_broker_and_database_and_nothing_else_when_plain() -> None:
    assert client_env(config(KAFKA_BROKERS="3")) == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19292,127.0.0.1:19293,127.0.0.1:19294",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:15632/store_publish",
    }


def test_env_adds_the_sasl_ssl_lines_from_the_material(tmp_path: Path) -> None:
    made = config(KAFKA_SECURE="1", SERVICES_HOME=str(tmp_path))
    users = tmp_path / "kafka-secure" / "users"
    users.mkdir(parents=True)
    for role in Role:
        (users / f"{kafka_username(role)}.password").write_text(f"s3cret-{role.value}\n")
    found = client_env(made)
    assert list(found) == [
        "KAFKA_BOOTSTRAP_SERVERS",
        "DATABASE_URL",
        "KAFKA_SECURE_BOOTSTRAP_SERVERS",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SSL_CAFILE",
        *(
            f"KAFKA_SASL_{part}_{role}"
            for role in [
                "CONSUMER",
                "STREAM",
                "GATEWAY",
                "UPSTREAM",
                "ANALYTICS",
                "ONCALL",
                "MIGRATE",
            ]
            for part in ("USERNAME", "PASSWORD")
        ),
    ]
    assert found["KAFKA_SECURE_BOOTSTRAP_SERVERS"] == "127.0.0.1:19094"
    assert found["KAFKA_SASL_USERNAME_ONCALL"] == "store-publish-oncall"
    assert found["KAFKA_SASL_PASSWORD_ONCALL"] == "s3cret-oncall"
    assert found["KAFKA_SSL_CAFILE"] == str(tmp_path / "kafka-secure" / "ca.pem")


def test_env_without_the_secure_material_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(ServicesError, match="KAFKA_SECURE=1 ops/dev/services up"):
        client_env(config(KAFKA_SECURE="1", SERVICES_HOME=str(tmp_path)))


def test_the_env_command_prints_lines_a_shell_can_eval_or_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"SERVICES_HOME": "/tmp/nowhere", "KAFKA_PORT": "20000", "PG_PORT": "16000"}
    assert run(["env"], environ) == 0
    assert capsys.readouterr().out == (
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:20000\n"
        "DATABASE_URL=postgresql://postgres@127.0.0.1:16000/store_publish\n"
    )
    assert run(["env", "--json"], environ) == 0
    assert json.loads(capsys.readouterr().out) == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:20000",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:16000/store_publish",
    }
