"""pulsar-admin's flag forms and aliases parse to the same FunctionConfig overrides."""

from __future__ import annotations

import pytest

from engine.cli.function_flags import overrides_from_args
from engine.cli.main import build_parser
from engine.config.errors import ConfigError


def _overrides(*argv: str) -> dict[str, object]:
    return overrides_from_args(build_parser().parse_args(["functions", "create", *argv]))


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["--cleanup-subscription"], {"cleanupSubscription": True}),
        (["--cleanup-subscription", "false"], {"cleanupSubscription": False}),
        (["--cleanup-subscription", "--name", "f"], {"cleanupSubscription": True, "name": "f"}),
        (["--skip-to-latest", "true"], {"skipToLatest": True}),
        (["--skip-to-latest", "false"], {"skipToLatest": False}),
        (["--runtime-flags", "-X dev"], {"runtimeFlags": "-X dev"}),
        (["--input-type-class-name", "java.lang.String"], {"inputTypeClassName": "java.lang.String"}),
        (["--className", "m.F"], {"className": "m.F"}),
        (["--processingGuarantees", "ATMOST_ONCE"], {"processingGuarantees": "ATMOST_ONCE"}),
        (["--userConfig", '{"a": 1}'], {"userConfig": {"a": 1}}),
        (["--windowLengthCount", "5"], {"windowConfig": {"windowLengthCount": "5"}}),
        (["--topicsPattern", "in-.*"], {"topicsPattern": "in-.*"}),
    ],
)
def test_flag_forms(argv: list[str], want: dict[str, object]) -> None:
    assert _overrides(*argv) == want


def test_bad_boolean_names_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        _overrides("--skip-to-latest", "maybe")
    assert str(info.value.problems[0]) == "--skip-to-latest: got 'maybe'; expected true or false"


def test_localrun_aliases_and_cluster_name() -> None:
    args = build_parser().parse_args(
        [
            "functions", "localrun", "--brokerServiceUrl", "pulsar://b:6650", "--clientAuthPlugin", "p",
            "--clientAuthParams", "x", "--use_tls", "--tls_allow_insecure", "--tls_trust_cert_path", "ca",
            "--hostname_verification_enabled", "--stateStorageServiceUrl", "sqlite:///s.db",
            "--instanceIdOffset", "3", "--web-service-url", "http://b:8080", "--cluster-name", "east",
        ]
    )  # fmt: skip
    assert args.broker_url == "pulsar://b:6650"
    assert (args.client_auth_plugin, args.client_auth_params) == ("p", "x")
    assert args.use_tls and args.tls_allow_insecure and args.hostname_verification_enabled
    assert (args.tls_trust_cert_path, args.state_storage_url) == ("ca", "sqlite:///s.db")
    assert (args.instance_id_offset, args.web_service_url, args.cluster_name) == (3, "http://b:8080", "east")
    assert build_parser().parse_args(["functions", "localrun"]).cluster_name == "standalone"


def test_verbs_and_default_outputs() -> None:
    parser = build_parser()
    for verb in ("get", "status", "getstatus", "stats"):
        assert parser.parse_args(["functions", verb, "--name", "f"]).output_format == "json"
    # list prints one name per line as pulsar-admin does, unless --output json/table is given.
    assert parser.parse_args(["functions", "list"]).output_format is None
    assert parser.parse_args(["functions", "list", "--output", "json"]).output_format == "json"
    table = parser.parse_args(["functions", "status", "--name", "f", "--output", "table"])
    assert table.output_format == "table"
    assert parser.parse_args(["functions", "update", "--name", "f", "--update-auth-data"]).update_auth_data
    for verb in ("reload", "available-functions"):
        assert parser.parse_args(["functions", verb]).handler is not None


@pytest.mark.parametrize("command", ["worker", "standalone"])
def test_disk_headroom_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args([command]).disk_headroom_mb is None  # the default of the disk module
    assert build_parser().parse_args([command, "--disk-headroom-mb", "0"]).disk_headroom_mb == 0
    assert build_parser().parse_args([command, "--disk-headroom-mb", "12.5"]).disk_headroom_mb == 12.5
    for bad in ("-1", "lots", "nan"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--disk-headroom-mb", bad])
        assert "argument --disk-headroom-mb: got" in capsys.readouterr().err
