"""Every long-running process is a systemd unit its role installed: active, enabled, restarted
on failure, under its own system user, hardened; and it listens only on the private address."""

from __future__ import annotations

import pytest

from conftest import var

HARDENING = {"NoNewPrivileges": "yes", "PrivateTmp": "yes", "Restart": "on-failure"}


def _unit(host, unit: str) -> dict[str, str]:
    out = host.check_output(
        f"systemctl show {unit} -p ActiveState -p UnitFileState -p User -p ProtectSystem "
        "-p NoNewPrivileges -p PrivateTmp -p Restart -p FragmentPath"
    )
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _check_unit(host, unit: str, user: str) -> None:
    props = _unit(host, unit)
    assert props["ActiveState"] == "active", f"{unit}: {props}"
    assert props["UnitFileState"] in ("enabled", "enabled-runtime"), f"{unit}: {props}"
    for name, value in HARDENING.items():
        assert props[name] == value, f"{unit}: {name}={props[name]}, expected {value}"
    assert props["ProtectSystem"] in ("yes", "full", "strict"), f"{unit}: {props}"
    assert props["User"] == user, f"{unit} runs as {props['User']!r}, expected {user}"


def _listens_only_on(host, port: int, address: str) -> None:
    sockets = [
        s
        for s in host.socket.get_listening_sockets()
        if s.startswith("tcp://") and s.rsplit(":", 1)[1] == str(port)
    ]
    assert sockets == [f"tcp://{address}:{port}"], (
        f"port {port} should listen on {address} only, listens on {sockets}"
    )


def _private_ip(host) -> str:
    return str(var(host, "lazyshift_private_ip", host.backend.host))


def test_mongodb_unit(mongodb_host):
    engine = var(mongodb_host, "lazyshift_mongodb_engine", "mongodb")
    unit, user = ("mongod", "mongodb") if engine == "mongodb" else ("ferretdb", "ferretdb")
    _check_unit(mongodb_host, unit, user)
    port = int(var(mongodb_host, "lazyshift_mongodb_port", 27017))
    _listens_only_on(mongodb_host, port, _private_ip(mongodb_host))


def test_mysql_is_the_distributions_unit(mysql_host):
    _check_unit(mysql_host, "mariadb", "mysql")
    props = _unit(mysql_host, "mariadb")
    assert props["FragmentPath"] == "/lib/systemd/system/mariadb.service", props
    assert not mysql_host.file("/etc/systemd/system/mariadb.service").exists
    port = int(var(mysql_host, "lazyshift_mysql_port", 3306))
    _listens_only_on(mysql_host, port, _private_ip(mysql_host))


def test_mock_source_unit(source_host):
    _check_unit(source_host, "lazyshift-mock-source", "lazyshift-source")
    port = int(var(source_host, "lazyshift_mock_source_port", 8282))
    _listens_only_on(source_host, port, _private_ip(source_host))


def _partitions(host) -> list[int]:
    return [int(k) for k in var(host, "lazyshift_client_partitions", [0])]


def test_one_client_unit_per_partition(client_host):
    partitions = _partitions(client_host)
    for k in partitions:
        _check_unit(client_host, f"lazyshift-client@{k}", "lazyshift")
    running = client_host.check_output(
        "systemctl list-units --state=active --plain --no-legend 'lazyshift-client@*'"
    )
    names = sorted(line.split()[0] for line in running.splitlines() if line.strip())
    assert names == sorted(f"lazyshift-client@{k}.service" for k in partitions)


def test_client_read_api_answers_on_the_private_address(client_host):
    base = int(var(client_host, "lazyshift_client_http_port", 8380))
    address = str(var(client_host, "lazyshift_client_http_host", "127.0.0.1"))
    for k in _partitions(client_host):
        _listens_only_on(client_host, base + k, address)
        url = f"http://{address}:{base + k}/healthz"
        out = client_host.run(
            "python3 -c 'import sys, urllib.request; "
            f'r = urllib.request.urlopen("{url}", timeout=10); print(r.status)\''
        )
        assert out.rc == 0 and out.stdout.strip() == "200", f"{url}: {out.stdout} {out.stderr}"


@pytest.mark.parametrize("name", ["client.toml"])
def test_client_secret_files_are_0600(client_host, name):
    config_dir = str(var(client_host, "lazyshift_common_config_dir", "/etc/lazyshift"))
    files = [f"{config_dir}/{name}"] + [
        f"{config_dir}/client-{k}.env" for k in _partitions(client_host)
    ]
    for path in files:
        f = client_host.file(path)
        assert f.is_file and f.mode == 0o600, f"{path}: mode {oct(f.mode)}"
    assert client_host.file(config_dir).mode == 0o750


def test_tools_config_is_0600_root(tools_host):
    config_dir = str(var(tools_host, "lazyshift_common_config_dir", "/etc/lazyshift"))
    f = tools_host.file(f"{config_dir}/tools.toml")
    assert f.is_file and f.mode == 0o600 and f.user == "root", f"{f.path}: {oct(f.mode)}"
    assert tools_host.run(f"/opt/lazyshift/venv/bin/lazyshift --config {f.path} --version").rc == 0
