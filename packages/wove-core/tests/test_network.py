"""The pieces every network transport shares: endpoint rules, service arguments, run routing."""

from __future__ import annotations

import argparse

import pytest

from wove import UnknownOptionError
from wove.network import ClientRuns, add_service_arguments, network_settings, service_options
from wove.plugins import TaskCancelled, TaskResult


def _arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_service_arguments(parser, default_port=8700)
    return parser.parse_args(argv)


def test_loopback_service_needs_nothing_more() -> None:
    options = service_options(_arguments("--bind", "127.0.0.1:0"), name="demo")
    assert (options.host, options.port, options.security, options.tls) == (
        "127.0.0.1",
        0,
        None,
        False,
    )
    assert options.url("http", 8123) == "http://127.0.0.1:8123"


def test_non_loopback_service_without_tls_and_security_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not a loopback address.*--insecure"):
        service_options(_arguments("--bind", "0.0.0.0:80"), name="demo")


def test_insecure_lifts_the_rule() -> None:
    options = service_options(_arguments("--bind", "0.0.0.0:80", "--insecure"), name="demo")
    assert options.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--bind", "localhost"), "--bind must be HOST:PORT"),
        (("--bind", "127.0.0.1:0", "--tls-key", "k.pem"), "go together"),
        (("--bind", "127.0.0.1:0", "--tls-client-ca", "ca.pem"), "needs --tls-cert"),
        (("--bind", "127.0.0.1:0", "--max-threads", "0"), "--max-threads must be at least 1"),
    ],
)
def test_bad_service_arguments_say_what_to_fix(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        service_options(_arguments(*argv), name="demo")


def test_tls_service_requires_a_certificate_when_asked() -> None:
    with pytest.raises(ValueError, match="needs --tls-cert and --tls-key"):
        service_options(_arguments("--bind", "127.0.0.1:0"), name="demo", require_tls=True)


def test_remote_endpoint_without_tls_is_refused_before_any_connection() -> None:
    with pytest.raises(ValueError, match=r"must use TLS.*insecure=True"):
        network_settings({}, host="example.invalid", tls=False, where="environment 'far'")


def test_remote_endpoint_with_tls_still_needs_security() -> None:
    with pytest.raises(ValueError, match="needs security"):
        network_settings({}, host="example.invalid", tls=True, where="environment 'far'")


def test_unknown_network_key_gets_a_hint() -> None:
    with pytest.raises(UnknownOptionError, match="Did you mean 'max_in_flight'"):
        network_settings({"max_inflight": 3}, host="127.0.0.1", tls=False, where="env")


def test_client_runs_deliver_one_terminal_event_and_orphan_a_lost_connection() -> None:
    runs = ClientRuns()
    runs.started("a-1", "connection-1")
    runs.started("b-1", "connection-2")
    runs.deliver(TaskResult(run_id="a-1", result=b""))
    runs.deliver(TaskCancelled(run_id="a-1"))  # late: a-1 already ended, so it is dropped
    runs.connection_lost("connection-2", "reset by peer")
    runs.deliver(TaskResult(run_id="b-1", result=b""))  # late again: b-1 was orphaned

    events = [runs.events.get_nowait() for _ in range(runs.events.qsize())]
    assert [type(event).__name__ for event in events] == ["TaskResult", "TaskError"]
    assert events[1].error.source == "orphaned"
    assert "reset by peer" in events[1].error.message
    assert runs.in_flight == 0
