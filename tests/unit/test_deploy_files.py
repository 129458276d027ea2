"""The cluster deployment files of docs/deploy/ (docs/deploy.md): they parse, they
name only metrics the CSMS exports, and they agree with each other and with
docs/operations.md. No server runs; haproxy and promtool check the files when
they are installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from csms.telemetry.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
HAPROXY = DEPLOY / "haproxy.cfg"
PROMETHEUS = DEPLOY / "prometheus.yml"
ALERTS = DEPLOY / "alerts.yml"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "csms.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "csms.json"

# docs/contract.md: the listeners' defaults and the shutdown bound.
CSMS_PORT = 9000
CSMS_HTTP_PORT = 8080
SHUTDOWN_SECONDS = 10

# The series names a metric family of each type exposes (prometheus_client
# strips "_total" from a counter's family name; a histogram has no series of
# its bare name). A family whose labels were never used has no samples yet,
# so its series are derived from its type as well as read from its samples.
SERIES_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}

_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_CSMS_IDENTIFIER = re.compile(r"(?<![\w:])csms_[A-Za-z0-9_:]*")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def exported_series() -> set[str]:
    """Every series name a scrape of the CSMS's /metrics can carry."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def csms_metric_names(expr: str) -> set[str]:
    """The ``csms_`` series names a PromQL expression selects (string literals,
    such as label values, are not names)."""
    return set(_CSMS_IDENTIFIER.findall(_PROMQL_STRING.sub('""', expr)))


def unknown_metrics(expr: str) -> set[str]:
    """The ``csms_`` names in ``expr`` that the CSMS does not export."""
    return csms_metric_names(expr) - exported_series()


def seconds(duration: str | int | float) -> float:
    """A Prometheus/Compose/HAProxy duration ("1h", "30s", "1m30s") in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    parts = _DURATION.findall(duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(int(n) * _DURATION_SECONDS[u] for n, u in parts)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE)
    return document


def csms_services() -> dict[str, dict[str, Any]]:
    """The CSMS processes of compose.yaml: the services built from the Dockerfile."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if "build" in service and service.get("image", "").startswith("csms")
    }


def alert_rules(document: Any) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def operations_alerts() -> Any:
    """The rules file that docs/operations.md shows under "The five alerts to have"."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    match = re.search(r"## The five alerts to have.*?```yaml\n(.*?)```", text, re.S)
    assert match is not None, "docs/operations.md has no alert rules block"
    return yaml.safe_load(match.group(1))


def dashboard_panels() -> Iterator[dict[str, Any]]:
    """Every panel of the dashboard, those inside collapsed rows included."""
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
    ]


def haproxy_sections() -> dict[str, list[str]]:
    """haproxy.cfg as "kind name" -> its lines, comments and blank lines left out."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in HAPROXY.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        else:
            current.append(line.strip())
    return sections


def backend_servers(backend: str) -> dict[str, str]:
    """Server name -> address of a backend of haproxy.cfg."""
    return {
        words[1]: words[2]
        for words in (line.split() for line in haproxy_sections()[f"backend {backend}"])
        if words[0] == "server"
    }


class TestMetricNameExtraction:
    def test_finds_histogram_and_counter_series_names(self) -> None:
        """Suffixed series names are taken whole, not cut at the family name."""
        expr = (
            "histogram_quantile(0.99, sum by (le)"
            ' (rate(csms_handler_seconds_bucket{action!~"Heartbeat"}[5m])))'
            ' / sum(rate(csms_messages_total{direction="in"}[5m]))'
        )
        assert csms_metric_names(expr) == {"csms_handler_seconds_bucket", "csms_messages_total"}

    def test_ignores_names_inside_label_values(self) -> None:
        """A label value that looks like a metric is not a metric."""
        assert csms_metric_names('up{job="csms_relay"} == 0') == set()

    def test_a_bogus_name_is_unknown(self) -> None:
        """A metric the CSMS does not export (a renamed one) is reported."""
        assert unknown_metrics("sum(rate(csms_bogus_total[5m]))") == {"csms_bogus_total"}

    def test_the_suffix_must_fit_the_type(self) -> None:
        """A gauge has no _total, a counter no bare name, a histogram no bare name."""
        expr = "csms_stations_connected_total + csms_messages + csms_handler_seconds"
        assert unknown_metrics(expr) == {
            "csms_stations_connected_total",
            "csms_messages",
            "csms_handler_seconds",
        }

    def test_exported_names_are_known(self) -> None:
        """The series of each metric type that the CSMS exports are known."""
        expr = (
            "csms_stations_connected + csms_messages_total + csms_handler_seconds_bucket"
            " + csms_handler_seconds_count + csms_handler_seconds_sum"
        )
        assert unknown_metrics(expr) == set()


class TestAlerts:
    def test_every_alert_is_complete(self) -> None:
        """Each rule has an expression, a duration, a severity and a summary."""
        rules = alert_rules(load_yaml(ALERTS))
        assert rules
        for rule in rules:
            name = rule["alert"]
            assert rule.get("expr"), name
            assert seconds(rule["for"]) > 0, name
            assert rule["labels"]["severity"] in {"page", "ticket"}, name
            assert rule["annotations"]["summary"], name

    def test_alert_names_are_unique(self) -> None:
        """No two rules share a name."""
        names = [rule["alert"] for rule in alert_rules(load_yaml(ALERTS))]
        assert len(names) == len(set(names))

    def test_alerts_name_only_exported_metrics(self) -> None:
        """Every csms_ series an alert reads is one the CSMS exports."""
        unknown = {
            rule["alert"]: unknown_metrics(rule["expr"])
            for rule in alert_rules(load_yaml(ALERTS))
            if unknown_metrics(rule["expr"])
        }
        assert unknown == {}

    def test_operations_alerts_are_in_the_rules_file(self) -> None:
        """Every alert docs/operations.md recommends is in alerts.yml, the same rule."""
        deployed = {rule["alert"]: rule for rule in alert_rules(load_yaml(ALERTS))}
        recommended = alert_rules(operations_alerts())
        assert recommended
        for rule in recommended:
            assert deployed.get(rule["alert"]) == rule, rule["alert"]


class TestDashboard:
    def test_dashboard_has_panels_with_queries(self) -> None:
        """The dashboard parses and every non-row panel queries Prometheus."""
        panels = [p for p in dashboard_panels() if p["type"] != "row"]
        assert len(panels) >= 12
        for panel in panels:
            assert panel["targets"], panel["title"]
            assert all(target["expr"] for target in panel["targets"]), panel["title"]

    def test_panel_ids_are_unique(self) -> None:
        """Grafana tells panels apart by id."""
        ids = [panel["id"] for panel in dashboard_panels()]
        assert len(ids) == len(set(ids))

    def test_dashboard_names_only_exported_metrics(self) -> None:
        """Every csms_ series a panel reads is one the CSMS exports."""
        unknown = {
            title: unknown_metrics(expr)
            for title, expr in dashboard_exprs()
            if unknown_metrics(expr)
        }
        assert unknown == {}

    def test_dashboard_shows_what_an_operator_watches(self) -> None:
        """The metrics of docs/deploy.md's dashboard list all have a panel."""
        read = set().union(*(csms_metric_names(expr) for _, expr in dashboard_exprs()))
        wanted = {
            "csms_stations_connected",
            "csms_messages_total",
            "csms_handler_seconds_bucket",
            "csms_call_errors_total",
            "csms_handshakes_rejected_total",
            "csms_storage_commit_seconds_bucket",
            "csms_outbox_pending_events",
            "csms_outbox_oldest_pending_seconds",
            "csms_events_published_total",
            "csms_event_publish_failures_total",
            "csms_event_loop_lag_seconds_bucket",
            "csms_commands_total",
            "csms_transactions_active",
            "csms_energy_delivered_wh_total",
        }
        assert wanted - read == set()

    def test_panels_use_the_provisioned_datasource(self) -> None:
        """Every panel and query names the datasource uid that Grafana is given."""
        uids = {source["uid"] for source in load_yaml(DATASOURCES)["datasources"]}
        for panel in dashboard_panels():
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in uids, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids, panel["title"]


class TestGrafanaProvisioning:
    def test_datasource_is_the_compose_prometheus(self) -> None:
        """The datasource points at the prometheus service of compose.yaml."""
        sources = load_yaml(DATASOURCES)["datasources"]
        assert [source["type"] for source in sources] == ["prometheus"]
        assert "prometheus" in compose()["services"]
        assert sources[0]["url"] == "http://prometheus:9090"

    def test_dashboard_provider_reads_the_mounted_folder(self) -> None:
        """The provider's path is where compose.yaml mounts grafana/dashboards."""
        providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
        mounts = dict(
            volume.split(":")[:2] for volume in compose()["services"]["grafana"]["volumes"]
        )
        assert [p["options"]["path"] for p in providers] == [mounts["./grafana/dashboards"]]
        assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


class TestCompose:
    def test_three_csms_processes_with_distinct_node_ids(self) -> None:
        """Three services are built from the Dockerfile, each with its own CSMS_NODE_ID."""
        services = csms_services()
        assert len(services) == 3
        node_ids = {service["environment"]["CSMS_NODE_ID"] for service in services.values()}
        assert node_ids == set(services)

    def test_processes_share_the_database_and_broker(self) -> None:
        """The cluster is one PostgreSQL URL and one AMQP URL, the same for all."""
        envs = [service["environment"] for service in csms_services().values()]
        assert len({env["CSMS_DATABASE_URL"] for env in envs}) == 1
        assert len({env["CSMS_AMQP_URL"] for env in envs}) == 1
        for env in envs:
            assert env["CSMS_DATABASE_URL"].startswith("postgresql://")
            assert env["CSMS_AMQP_URL"].startswith("amqp://")
            assert env["CSMS_HOST"] == "0.0.0.0"

    def test_processes_are_built_from_the_repository_dockerfile(self) -> None:
        """The build context is the repository root, which holds the Dockerfile."""
        for service in csms_services().values():
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).is_file()

    def test_stop_grace_period_exceeds_the_shutdown_window(self) -> None:
        """Docker's SIGKILL comes after the contract's 10 s shutdown, not during it."""
        for name, service in csms_services().items():
            assert seconds(service["stop_grace_period"]) > SHUTDOWN_SECONDS, name

    def test_services_use_the_named_versions(self) -> None:
        """PostgreSQL 16 and RabbitMQ 3, with health checks the CSMS waits for."""
        services = compose()["services"]
        assert services["postgres"]["image"] == "postgres:16"
        assert services["rabbitmq"]["image"] == "rabbitmq:3"
        for service in csms_services().values():
            for dependency in ("postgres", "rabbitmq"):
                assert service["depends_on"][dependency]["condition"] == "service_healthy"
                assert "healthcheck" in services[dependency]

    def test_balancer_publishes_both_listeners(self) -> None:
        """HAProxy publishes the stations' port and the operations port."""
        ports = compose()["services"]["haproxy"]["ports"]
        published = {port.rsplit(":", 2)[-1] for port in ports}
        assert {str(CSMS_PORT), str(CSMS_HTTP_PORT)} <= published

    def test_mounted_files_exist(self) -> None:
        """Every file or folder compose.yaml mounts from the repository exists."""
        for name, service in compose()["services"].items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    assert (COMPOSE.parent / source).exists(), f"{name}: {source}"


class TestHaproxy:
    def test_both_backends_name_every_csms_process(self) -> None:
        """Stations and REST requests may reach any of the three processes."""
        services = set(csms_services())
        ocpp = backend_servers("csms_ocpp")
        http = backend_servers("csms_http")
        assert set(ocpp) == services
        assert set(http) == services
        assert ocpp == {name: f"{name}:{CSMS_PORT}" for name in services}
        assert http == {name: f"{name}:{CSMS_HTTP_PORT}" for name in services}

    def test_both_backends_check_readiness(self) -> None:
        """A process answering 503 on /health/ready (draining, no database) gets nothing new."""
        sections = haproxy_sections()
        for backend in ("backend csms_ocpp", "backend csms_http"):
            lines = sections[backend]
            assert "option httpchk" in lines
            assert "http-check send meth GET uri /health/ready" in lines
            servers = [line for line in lines if line.startswith("server ")]
            assert all(" check" in line for line in servers)
        ocpp_servers = [line for line in sections["backend csms_ocpp"] if line.startswith("server")]
        assert all(line.endswith(f"check port {CSMS_HTTP_PORT}") for line in ocpp_servers)

    def test_no_sticky_sessions(self) -> None:
        """Any process serves any station: nothing pins a client to a server."""
        for header, lines in haproxy_sections().items():
            for line in lines:
                assert not line.startswith(("stick", "cookie", "balance source")), header

    def test_station_connections_may_stay_idle_an_hour(self) -> None:
        """Station WebSockets last days; the tunnel timeout is at least an hour."""
        sections = haproxy_sections()
        timeouts = {
            line.split()[1]: seconds(line.split()[2])
            for line in sections["backend csms_ocpp"] + sections["frontend ocpp"]
            if line.startswith("timeout ")
        }
        for name in ("tunnel", "client", "server"):
            assert timeouts[name] >= 3600, name

    def test_haproxy_accepts_the_configuration(self) -> None:
        """haproxy -c validates the file; the only warnings allowed are the unresolvable
        compose service names (they resolve inside the compose network)."""
        binary = shutil.which("haproxy")
        if binary is None:
            pytest.skip("haproxy is not installed (apt-get install haproxy)")
        result = subprocess.run(
            [binary, "-c", "-f", str(HAPROXY)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        warnings = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if "[WARNING]" in line and "could not resolve address" not in line
        ]
        assert warnings == []


class TestPrometheus:
    def test_scrapes_every_csms_process_directly(self) -> None:
        """The csms job has each process's operations port as a target."""
        jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS)["scrape_configs"]}
        targets = {t for config in jobs["csms"]["static_configs"] for t in config["targets"]}
        assert targets == {f"{name}:{CSMS_HTTP_PORT}" for name in csms_services()}
        assert jobs["csms"].get("metrics_path", "/metrics") == "/metrics"

    def test_loads_the_alerts_file(self) -> None:
        """rule_files names where compose.yaml mounts alerts.yml."""
        mounts = dict(
            volume.split(":")[:2] for volume in compose()["services"]["prometheus"]["volumes"]
        )
        assert load_yaml(PROMETHEUS)["rule_files"] == [mounts["./alerts.yml"]]

    def test_promtool_accepts_the_configuration(self, tmp_path: Path) -> None:
        """promtool checks prometheus.yml and the rules it loads."""
        binary = shutil.which("promtool")
        if binary is None:
            pytest.skip("promtool is not installed (Debian's prometheus package has it)")
        config = load_yaml(PROMETHEUS)
        config["rule_files"] = [str(ALERTS)]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        result = subprocess.run(
            [binary, "check", "config", str(tmp_path / "prometheus.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
