"""TLS client certificates, ``ssl_cert_reqs`` and an ACL user limited to a key pattern, on real
servers (the basics, rediss:// with a CA file and ACL logins, are in test_connect)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any
from urllib.parse import quote

import pytest
import redis

from django_rb.cluster import Cluster, HostConnectionError
from django_rb.testing import keys_per_host

CLIENT_SECRET = "limited-Secret-99"


def openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    assert binary is not None
    subprocess.run([binary, *args], check=True, capture_output=True, timeout=30)


NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def client_certificate(directory: str, ca_cert: str | None) -> tuple[str, str]:
    """A client certificate and key, signed by the test CA (its key sits next to ca.crt), or
    self-signed when ``ca_cert`` is None."""
    name = "signed" if ca_cert else "selfsigned"
    cert, key, csr = (os.path.join(directory, f"{name}.{ext}") for ext in ("crt", "key", "csr"))
    if ca_cert is None:
        openssl("req", "-x509", *NEW_KEY, "-keyout", key, "-out", cert, "-days", "2",
                "-subj", "/CN=nobody")  # fmt: skip
        return cert, key
    ca_key = os.path.join(os.path.dirname(ca_cert), "ca.key")
    openssl("req", *NEW_KEY, "-keyout", key, "-out", csr, "-subj", "/CN=django_rb test client")
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2")  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def client_tls_nodes(redis_nodes: Any) -> list[Any]:
    """Two TLS nodes that check any client certificate against the test CA ("optional": the
    fixtures' readiness probe has none; "yes" would refuse it)."""
    return redis_nodes(2, tls=True, extra_args=["--tls-auth-clients", "optional"])


def url(node: Any, **query: str) -> str:
    params = "&".join(f"{name}={quote(value, safe='/')}" for name, value in query.items())
    return f"rediss://127.0.0.1:{node.port}/0?{params}"


def test_client_certificate_is_sent_and_checked(client_tls_nodes: list[Any], tmp_path: Any) -> None:
    ca = client_tls_nodes[0].tls.ca_cert
    cert, key = client_certificate(str(tmp_path), ca)
    bad_cert, bad_key = client_certificate(str(tmp_path), None)
    rogue = Cluster([url(n, ssl_ca_certs=ca, ssl_certfile=bad_cert, ssl_keyfile=bad_key)
                     for n in client_tls_nodes])  # fmt: skip
    with pytest.raises(HostConnectionError) as info, rogue.map(timeout=3) as client:
        refused = client.set("rogue", "1")
    assert refused.is_rejected and "127.0.0.1:" in str(info.value)
    hosts = [url(n, ssl_ca_certs=ca, ssl_certfile=cert, ssl_keyfile=key) for n in client_tls_nodes]
    cluster = Cluster(hosts)
    owners = keys_per_host(cluster, 5, "mtls")
    with cluster.map(timeout=3) as client:
        for keys in owners.values():
            for k in keys:
                client.set(k, k)
    with cluster.map(timeout=3) as client:
        got = {k: client.get(k) for keys in owners.values() for k in keys}
    assert {k: p.value for k, p in got.items()} == {k: k.encode() for k in got}
    assert cluster.get_routing_client().exists("rogue") == 0  # the refused client ran nothing
    # the same settings as an rb-style host dict
    as_dict = Cluster({0: {"host": "127.0.0.1", "port": client_tls_nodes[0].port, "ssl": True,
                           "ssl_options": {"ca_certs": ca, "certfile": cert, "keyfile": key}}})  # fmt: skip
    assert as_dict.get_routing_client().get(owners[0][0]) == owners[0][0].encode()


def ping(cluster: Cluster) -> Any:
    with cluster.all(timeout=3) as client:
        answer = client.ping()
    return answer.value


def test_ssl_cert_reqs_none_skips_verification_and_required_verifies(
    rb_tls_nodes: list[Any],
) -> None:
    node = rb_tls_nodes[0]
    unverified = Cluster([url(node, ssl_cert_reqs="none")])  # the CA is not trusted: accepted
    assert ping(unverified) == {0: True}
    verified = Cluster([url(node, ssl_cert_reqs="required")])
    with pytest.raises(HostConnectionError, match="certificate verify failed"):
        ping(verified)
    trusted = Cluster([url(node, ssl_cert_reqs="required", ssl_ca_certs=node.tls.ca_cert)])
    assert ping(trusted) == {0: True}


@pytest.fixture(scope="module")
def acl_nodes(redis_nodes: Any) -> list[Any]:
    """Two nodes with a user allowed only keys under ``app:``."""
    limited = ["--user", "limited", "on", f">{CLIENT_SECRET}", "~app:*", "+@all", "-flushall"]
    return redis_nodes(2, extra_args=limited)


def test_acl_user_limited_to_a_key_pattern(acl_nodes: list[Any]) -> None:
    cluster = Cluster([f"redis://limited:{CLIENT_SECRET}@127.0.0.1:{n.port}/0" for n in acl_nodes])
    allowed = keys_per_host(cluster, 3, "app:k")
    denied = keys_per_host(cluster, 3, "other:k")
    with cluster.map() as client:
        ok = [client.set(k, "v") for keys in allowed.values() for k in keys]
    assert all(p.value is True for p in ok)
    with pytest.raises(redis.exceptions.NoPermissionError) as info, cluster.map() as client:
        mixed = {k: client.set(k, "w") for keys in [*allowed.values(), *denied.values()]
                 for k in keys}  # fmt: skip
    assert "no permissions" in str(info.value) and CLIENT_SECRET not in str(info.value)
    for key, promise in mixed.items():
        if key.startswith("other:"):
            assert promise.is_rejected and isinstance(
                promise.reason, redis.exceptions.NoPermissionError
            )
    # an allowed key's SET folded into one MSET with a denied key fails with it: its promise
    # says so, and what each promise says is what the nodes hold
    for node in acl_nodes:
        plain = redis.Redis(port=node.port)
        for key in plain.keys("*"):
            assert key.startswith(b"app:")
            landed = plain.get(key) == b"w"
            assert landed == (mixed[key.decode()].value is True)
    unfolded = cluster.map(auto_batch=False)  # one SET each: each meets only its own fate
    with pytest.raises(redis.exceptions.NoPermissionError), unfolded as client:
        ok = [client.set(k, "x") for keys in allowed.values() for k in keys]
        for keys in denied.values():
            for k in keys:
                client.set(k, "x")
    assert all(p.value is True for p in ok)
    with pytest.raises(redis.exceptions.NoPermissionError):
        with cluster.all() as client:
            client.flushall()
    assert sum(redis.Redis(port=n.port).dbsize() for n in acl_nodes) == 6  # nothing flushed
