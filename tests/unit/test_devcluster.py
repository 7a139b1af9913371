"""Unit tests for the local cluster's layout, config and rings (cli._devcluster)."""

from __future__ import annotations

import tomllib

from cli import _devcluster as dc
from common.config import load_config
from proxy import _tempauth_core
from proxy.config import proxy_config
from ring.builderfile import ClusterBuilder
from ring.ringfile import read_ring


def test_config_round_trips_and_feeds_proxy_and_tempauth(tmp_path):
    layout = dc.Layout(tmp_path, dc.plan_nodes(tmp_path, [6210, 6220, 6230, 6240], 2))
    text = dc.render_config(dc.config_sections(layout, "sekrit", extra={"proxy": {"workers": 2}}))
    raw = tomllib.loads(text)
    assert raw["tempauth"]["users"]["test:tester3"] == {"key": "testing3", "groups": []}
    path = tmp_path / "c.toml"
    path.write_text(text)
    cluster = load_config(path)
    assert cluster.hash_secret == "sekrit"
    assert cluster.ring_dir == str((tmp_path / "rings").resolve())
    conf = proxy_config(cluster)
    assert conf.account_autocreate is True and conf.workers == 2
    settings = _tempauth_core.parse_settings(cluster.section("tempauth"), cluster.hash_secret)
    assert set(settings.users) == set(dc.DEFAULT_USERS)
    admin = settings.users["admin:admin"]
    assert ".reseller_admin" in admin.groups


def test_layout_has_distinct_zones_and_drives(tmp_path):
    nodes = dc.plan_nodes(tmp_path, [1, 2, 3, 4], 2)
    assert [n.zone for n in nodes] == [1, 2, 3, 4]
    devices = [d for n in nodes for d, _ in n.drives]
    assert devices == [f"d{i}" for i in range(1, 9)]
    assert nodes[1].drives_arg == f"d3={tmp_path}/node2/d3,d4={tmp_path}/node2/d4"


def test_ensure_cluster_builds_rings_once(tmp_path):
    layout = dc.ensure_cluster(tmp_path / "data", storage_ports=[7001, 7002, 7003, 7004], part_power=4, now=1.0)
    for name in ("object", "container", "account"):
        ring = read_ring(layout.ring_dir / f"{name}.ring")
        assert ring.replicas == 3
        # three replicas of each partition on three different nodes (zones)
        for part in range(1 << ring.part_power):
            ports = {ring.devices[int(ring.replica2part2dev[r][part])].port for r in range(3)}
            assert len(ports) == 3
    secret = load_config(layout.config_path).hash_secret
    again = dc.ensure_cluster(tmp_path / "data", storage_ports=[1, 2, 3, 4])
    assert again.nodes == layout.nodes  # read back from the inventory, ports kept
    assert load_config(again.config_path).hash_secret == secret
    assert len(ClusterBuilder.load(layout.builder_path).inventory.drives) == 8
    spec = dc.storage_spec(layout, 0)
    assert spec.argv[-6:] == ("--config", str(layout.config_path), "--drives", layout.nodes[0].drives_arg,
                              "--port", "7001")


def test_a_port_is_busy_while_listened_on_not_while_its_connections_linger():
    """``dev up`` right after ``dev down``: the stopped cluster's connections
    sit in TIME_WAIT on its ports, which a server (SO_REUSEADDR) may bind."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    assert not dc.port_free(port)  # listening: busy
    served.close()  # the server closes first: its end of the connection lingers in TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    with socket.socket() as plain:  # what the check used to do: refused while TIME_WAIT lasts
        try:
            plain.bind(("127.0.0.1", port))
            lingering = False
        except OSError:
            lingering = True
    assert lingering, "no TIME_WAIT left behind; the test did not set up what it checks"
    assert dc.port_free(port)
