"""Built-in sources against the real thing: the broker, files in a tmp dir, a real HTTP client."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import orjson
import pulsar

from tests.io.conftest import consume, topic, wait_until


def test_data_generator_publishes_count_records_of_its_shape(run_connector, client: pulsar.Client) -> None:
    dest = topic()
    runner = run_connector(
        "sources",
        "localrun",
        "--source-type",
        "data-generator",
        "--name",
        "gen",
        "--destination-topic-name",
        dest,
        "--source-config",
        '{"count": 50, "shape": "json", "keyed": true}',
    )
    msgs = consume(client, dest, 50)
    values = [orjson.loads(m.data()) for m in msgs]
    assert [v["id"] for v in values] == list(range(50))
    assert {m.partition_key() for m in msgs} == {f"key-{n}" for n in range(16)}
    status = wait_until(lambda: (s := runner.status())["instances"][0]["status"]["numWritten"] == 50 and s)
    assert status["instances"][0]["status"]["numReceivedFromSource"] == 50
    assert consume(client, dest, 51, timeout=1.0)[50:] == []  # count is honoured


def test_file_source_emits_each_line_once_across_restarts(
    run_connector, client: pulsar.Client, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "a.txt").write_text("a1\na2\na3\n")
    (inbox / "sub" / "b.txt").write_text("b1\nb2\n")
    (inbox / ".hidden").write_text("never\n")
    (inbox / "skip.log").write_text("filtered out\n")
    dest = topic()
    config = orjson.dumps(
        {"inputDirectory": str(inbox), "keepFile": True, "fileFilter": r".*\.txt", "pollingInterval": 100}
    ).decode()
    args = (
        "sources",
        "localrun",
        "--source-type",
        "file",
        "--name",
        "files",
        "--destination-topic-name",
        dest,
        "--source-config",
        config,
    )
    first = run_connector(*args)
    msgs = consume(client, dest, 5)
    assert sorted(m.data() for m in msgs) == [b"a1", b"a2", b"a3", b"b1", b"b2"]
    assert msgs[0].properties()["file.name"] in ("a.txt", "b.txt")
    # The offsets are committed once the lines are persisted.
    wait_until(lambda: first.instances[0].written == 5 and first.instances[0].state_buffer.is_empty())
    first.stop()
    with open(inbox / "a.txt", "a") as fh:
        fh.write("a4\n")
    (inbox / "c.txt").write_text("c1\n")
    run_connector(*args)
    msgs = consume(client, dest, 7)
    assert sorted(m.data() for m in msgs) == [b"a1", b"a2", b"a3", b"a4", b"b1", b"b2", b"c1"]
    assert consume(client, dest, 8, timeout=1.5)[7:] == []  # nothing read twice


def test_file_source_deletes_files_once_persisted(
    run_connector, client: pulsar.Client, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "x.txt").write_text("".join(f"line-{i}\n" for i in range(2500)))
    dest = topic()
    run_connector(
        "sources",
        "localrun",
        "--source-type",
        "file",
        "--destination-topic-name",
        dest,
        "--source-config",
        orjson.dumps({"inputDirectory": str(inbox), "pollingInterval": 100}).decode(),
    )
    msgs = consume(client, dest, 2500)
    assert [m.data() for m in msgs] == [f"line-{i}".encode() for i in range(2500)]
    assert wait_until(lambda: not (inbox / "x.txt").exists())


def test_file_source_config_errors_name_the_key(run_connector, tmp_path: Path) -> None:
    import pytest

    from engine.config.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        run_connector(
            "sources",
            "localrun",
            "--source-type",
            "file",
            "--destination-topic-name",
            topic(),
            "--source-config",
            orjson.dumps({"inputDirectory": str(tmp_path / "nope"), "recurse": "yes"}).decode(),
        )
    text = str(err.value)
    assert "sourceConfig.inputDirectory" in text and "sourceConfig.recurse" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_source_answers_200_once_persisted(run_connector, client: pulsar.Client) -> None:
    dest = topic()
    port = _free_port()
    run_connector(
        "sources",
        "localrun",
        "--source-type",
        "http",
        "--destination-topic-name",
        dest,
        "--source-config",
        orjson.dumps({"port": port, "path": "/in", "authToken": "s3cret"}).decode(),
    )
    url = f"http://127.0.0.1:{port}/in?key=k1"
    denied = urllib.request.Request(url, data=b"x", method="POST")
    try:
        urllib.request.urlopen(denied, timeout=10)
        raise AssertionError("a request without the token was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    for i in range(5):
        req = urllib.request.Request(
            url,
            data=f"m{i}".encode(),
            method="POST",
            headers={"Authorization": "Bearer s3cret", "X-Property-origin": "test"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            assert orjson.loads(resp.read()) == {"persisted": True}
        # 200 means persisted: the message is on the topic already.
        got = consume(client, dest, i + 1, timeout=5.0)
        assert got[-1].data() == f"m{i}".encode()
    assert got[0].partition_key() == "k1" and got[0].properties()["origin"] == "test"
