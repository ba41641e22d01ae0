"""``mesh create`` and ``mesh update`` show progress on stderr: upload, members stored, instances running."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

import engine.examples.exclamation as exclamation
from engine.broker import EmbeddedBroker
from tests.cluster.conftest import magnetar, new_cluster
from tests.mesh.documents import pip66


def test_mesh_create_and_update_show_upload_storage_and_instances_starting(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1)
    try:
        url = cluster.workers[0].url
        ns = cluster.namespace.split("/")[1] + "-mp"
        fqmn = f"public/{ns}/exclaim-chain"
        shutil.copy(exclamation.__file__, tmp_path / "exclamation.py")
        size = (tmp_path / "exclamation.py").stat().st_size
        doc = pip66(ns)
        mesh_file = tmp_path / "chain.yaml"
        mesh_file.write_text(yaml.safe_dump(doc, sort_keys=False))

        res = magnetar("mesh", "create", "-f", str(mesh_file), "--admin-url", url, timeout=120)
        assert res.returncode == 0, res.stderr
        assert yaml.safe_load(res.stdout)["added"] == ["first", "second"]  # stdout keeps the answer alone
        lines = res.stderr.splitlines()
        upload = [ln for ln in lines if ln.startswith("uploading exclamation.py")]
        assert upload[-1].startswith(
            f"uploading exclamation.py (for function first, function second): 100% ({size} B of {size} B)"
            " — sent in"
        ), lines
        stored = lines.index(f"stored mesh {fqmn} (version 0)")
        assert lines[stored + 1 : stored + 3] == ["  added: first", "  added: second"], lines
        starting = [ln for ln in lines[stored:] if ln.startswith(f"starting mesh {fqmn}")]
        assert starting[-1].startswith(
            f"starting mesh {fqmn}: 100% (2 instances running of 2 instances running) — ready in"
        ), lines
        counts = [int(m.group(1)) for ln in starting if (m := re.search(r"\((\d+) instances running", ln))]
        assert counts == sorted(counts), lines
        assert lines.index(starting[-1]) < lines.index(f"Created mesh {fqmn}")

        # An update: one member changed (two replicas), one untouched; progress counts the three instances.
        doc["functionInfos"][1]["replicas"] = 2
        mesh_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        res = magnetar("mesh", "update", "-f", str(mesh_file), "--admin-url", url, timeout=120)
        assert res.returncode == 0, res.stderr
        lines = res.stderr.splitlines()
        stored = lines.index(f"stored mesh {fqmn} (version 1)")
        assert lines[stored + 1 : stored + 3] == ["  changed: second", "  unchanged: first"], lines
        assert any(
            ln.startswith(f"starting mesh {fqmn}: 100% (3 instances running of 3 instances running) — ready")
            for ln in lines
        ), lines

        # --no-wait returns once stored; a mesh that cannot get ready in --wait-timeout is a warning.
        res = magnetar("mesh", "delete", "--name", "exclaim-chain", "--namespace", ns, "--admin-url", url)
        assert res.returncode == 0, res.stderr
        res = magnetar("mesh", "create", "-f", str(mesh_file), "--no-wait", "--admin-url", url, timeout=120)
        assert res.returncode == 0 and "starting mesh" not in res.stderr, res.stderr
        res = magnetar("mesh", "delete", "--name", "exclaim-chain", "--namespace", ns, "--admin-url", url)
        assert res.returncode == 0, res.stderr
        res = magnetar(
            "mesh", "create", "-f", str(mesh_file), "--wait-timeout", "0", "--admin-url", url, timeout=120
        )
        assert res.returncode == 0, res.stderr
        assert f"warning: mesh {fqmn} is stored but not ready after 0s" in res.stderr, res.stderr
        assert "— not ready (waiting for " in res.stderr, res.stderr
        bad = magnetar("mesh", "create", "-f", str(mesh_file), "--wait-timeout", "soon", "--admin-url", url)
        assert bad.returncode != 0 and "--wait-timeout" in bad.stderr and "seconds" in bad.stderr
    finally:
        cluster.stop_all()
