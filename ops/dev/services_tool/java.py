"""The broker's jars (resolved by Maven from ops/dev/kafka/pom.xml) and the JVMs run from them:
the command-line tools and the readiness probe, with a small heap and warnings only."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

from ops.dev.services_tool.config import Config
from ops.dev.services_tool.system import ServicesError, log, since, tail


def java_bin(config: Config) -> str:
    if config.java_home is not None and (config.java_home / "bin" / "java").exists():
        return str(config.java_home / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise ServicesError("java not found (Kafka 4 needs Java 17+)")
    return found


def ensure_kafka_libs(config: Config) -> None:
    """The jars of the pom, downloaded again only when the pom changes."""
    pom = config.dev / "kafka" / "pom.xml"
    want = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = config.kafka_libs / ".pom.sha256"
    if stamp.exists() and stamp.read_text().strip() == want:
        return
    if shutil.which("mvn") is None:
        raise ServicesError("mvn not found: it resolves the Kafka jars (run ops/dev/bootstrap)")
    log("resolving Kafka jars from ops/dev/kafka/pom.xml with Maven")
    started = time.monotonic()
    config.logs.mkdir(parents=True, exist_ok=True)
    tmp = config.kafka_libs.with_name(f"{config.kafka_libs.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    maven_log = config.logs / "maven.log"
    with maven_log.open("w") as out:
        done = subprocess.run(
            [
                "mvn",
                "-B",
                "-q",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ServicesError(
            f"Maven could not resolve the Kafka jars ({maven_log}):\n{tail(maven_log, 30)}"
        )
    (tmp / ".pom.sha256").write_text(want + "\n")
    shutil.rmtree(config.kafka_libs, ignore_errors=True)
    tmp.rename(config.kafka_libs)
    shutil.rmtree(config.probe_classes, ignore_errors=True)
    jars = len(list(config.kafka_libs.glob("*.jar")))
    log(f"Kafka jars ready: {jars} jars in {since(started)}")


def kafka_version(config: Config) -> str:
    for jar in config.kafka_libs.glob("kafka-clients-*.jar"):
        return jar.name.removeprefix("kafka-clients-").removesuffix(".jar")
    return "unknown"


def tool_command(config: Config, *args: str, extra_classpath: Path | None = None) -> list[str]:
    """`java ... CLASS ARGS` for a class of the broker's jars, in a small client JVM."""
    classpath = f"{config.kafka_libs}/*"
    if extra_classpath is not None:
        classpath += f":{extra_classpath}"
    return [
        java_bin(config),
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={config.dev / 'kafka' / 'log4j2-tools.properties'}",
        "-cp",
        classpath,
        *args,
    ]


def run_tool(config: Config, *args: str, log_file: Path, what: str) -> None:
    """Runs a Kafka tool class, its output appended to `log_file`; ServicesError if it fails."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as out:
        done = subprocess.run(
            tool_command(config, *args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise ServicesError(f"kafka: {what} failed ({log_file}):\n{tail(log_file)}")


def ensure_probe(config: Config) -> Path:
    """Probe.java compiled into this SERVICES_HOME; the directory of its class."""
    source = config.dev / "kafka" / "Probe.java"
    compiled = config.probe_classes / "Probe.class"
    if compiled.exists() and compiled.stat().st_mtime > source.stat().st_mtime:
        return config.probe_classes
    if shutil.which("javac") is None:
        raise ServicesError("javac not found: the readiness probe needs a JDK 17+")
    config.probe_classes.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "javac",
            "-nowarn",
            "-cp",
            f"{config.kafka_libs}/*",
            "-d",
            str(config.probe_classes),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ServicesError(f"could not compile {source}:\n{done.stderr}")
    return config.probe_classes
