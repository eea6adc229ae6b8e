"""Bounded connections: slow, silent and surplus clients are dropped, normal ones are served.

Real sockets against a real server (the test server of ``test_serving``), with deadlines of about a
second so every wait here is bounded; nothing measures speed.
"""

import socket
import threading
import time

import httpx
import pytest

from hf_genrec import ItemIdMap
from hf_genrec.serving import ConnectionLimits
from hf_genrec.serving.server import RESERVED_FILE_DESCRIPTORS, check_file_descriptors

from .conftest import tiny_recommender
from .test_serving import Server

HEADER_S, BODY_S, KEEP_ALIVE_S = 1.0, 1.0, 1
LIMITS = ConnectionLimits(header_timeout_s=HEADER_S, body_timeout_s=BODY_S, keep_alive_timeout_s=KEEP_ALIVE_S)
#: how late past its deadline a connection may be closed on a loaded 2-core machine
SLACK_S = 2.0
REQUEST_HEAD = b"POST /v1/recommend HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"


@pytest.fixture(scope="module")
def model():
    m = tiny_recommender(num_items=30).eval()
    m.set_item_map(ItemIdMap(range(100, 130)))
    return m


def connect(srv) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=HEADER_S + BODY_S + 3 * SLACK_S)
    return s


def read_until_closed(s: socket.socket) -> tuple[bytes, float]:
    """What the server sent before closing, and when it closed (``time.monotonic``)."""
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    return got, time.monotonic()


def drip(s: socket.socket, lines: list[bytes], every_s: float, stop: threading.Event) -> None:
    """Send one line every ``every_s`` seconds until the server closes or ``stop`` is set."""
    for line in lines:
        if stop.wait(every_s):
            return
        try:
            s.sendall(line)
        except OSError:  # closed by the server: what the test waits for
            return


def body(history: list[int]) -> bytes:
    return b'{"history": [' + b", ".join(b"%d" % i for i in history) + b"]}"


def test_header_and_body_dripped_slowly_are_cut_at_their_deadline_while_others_are_served(model):
    with Server(model, LIMITS) as srv:
        stop = threading.Event()
        slow_heads = [connect(srv) for _ in range(20)]
        payload = body([101, 102])
        slow_bodies = [connect(srv) for _ in range(5)]
        for s in slow_bodies:  # a whole head promising a body that then arrives a byte at a time
            s.sendall(REQUEST_HEAD + b"content-length: %d\r\n\r\n" % len(payload))
        started = time.monotonic()
        threads = [
            threading.Thread(target=drip, args=(s, [b"x-drip: %d\r\n" % i for i in range(100)], 0.2, stop))
            for s in slow_heads
        ] + [threading.Thread(target=drip, args=(s, [bytes([c]) for c in payload], 0.2, stop)) for s in slow_bodies]
        for t in threads:
            t.start()
        # Meanwhile a normal client is answered, each request well inside the header deadline
        # (it never waits behind the slow clients).
        answers = []
        while time.monotonic() - started < HEADER_S + 0.5:
            t0 = time.monotonic()
            r = httpx.post(srv.url + "/v1/recommend", content=body([101, 102]), timeout=30)
            answers.append((r.status_code, time.monotonic() - t0))
        head_ends = [read_until_closed(s) for s in slow_heads]
        body_ends = [read_until_closed(s) for s in slow_bodies]
        stop.set()
        for t in threads:
            t.join()
    assert answers and all(code == 200 for code, _ in answers), answers
    assert max(latency for _, latency in answers) < HEADER_S, answers
    for got, closed_at in head_ends:
        assert got.startswith(b"HTTP/1.1 408 ") and b"request head not read in time" in got
        assert HEADER_S - 0.1 <= closed_at - started <= HEADER_S + SLACK_S
    for got, closed_at in body_ends:
        assert got == b"" and closed_at - started <= BODY_S + SLACK_S  # the handler never answered a partial body


def test_a_silent_connection_is_closed_and_a_keep_alive_client_is_served_past_the_header_deadline(model):
    with Server(model, LIMITS) as srv:
        silent = connect(srv)
        opened = time.monotonic()
        # One connection, a request every 0.6 s for 2.4 s in all: each head has its own deadline.
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            codes = []
            for _ in range(4):
                codes.append(client.post("/v1/recommend", content=body([101])).status_code)
                time.sleep(0.6)
            reused = client.post("/v1/recommend", content=body([101]))
        got, closed_at = read_until_closed(silent)
    assert codes == [200] * 4 and reused.status_code == 200
    assert got.startswith(b"HTTP/1.1 408 ") and closed_at - opened <= HEADER_S + SLACK_S


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(model):
    with Server(model, LIMITS) as srv:
        s = connect(srv)
        payload = body([101])
        s.sendall(REQUEST_HEAD + b"content-length: %d\r\n\r\n" % len(payload) + payload)
        answered = time.monotonic()
        got, closed_at = read_until_closed(s)
    assert got.startswith(b"HTTP/1.1 200 ") and b'"items"' in got
    assert KEEP_ALIVE_S - 0.1 <= closed_at - answered <= KEEP_ALIVE_S + SLACK_S


def test_connections_beyond_the_cap_get_503_and_are_closed_while_those_under_it_are_served(model):
    limits = ConnectionLimits(header_timeout_s=30.0, body_timeout_s=30.0, keep_alive_timeout_s=30, max_connections=4)
    with Server(model, limits) as srv:
        held = [connect(srv) for _ in range(3)]  # idle: they hold 3 of the 4 places
        time.sleep(0.2)
        with httpx.Client(base_url=srv.url, timeout=30) as client:  # the 4th place
            assert client.post("/v1/recommend", content=body([101])).status_code == 200
            surplus = connect(srv)
            got, _ = read_until_closed(surplus)
            assert got.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in got
            held.pop().close()
            time.sleep(0.2)
            assert client.post("/v1/recommend", content=body([102])).status_code == 200
        for s in held:
            s.close()


def test_a_connection_cap_the_open_file_limit_cannot_hold_is_refused(monkeypatch):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 4096))
    check_file_descriptors(ConnectionLimits(max_connections=256 - RESERVED_FILE_DESCRIPTORS))
    with pytest.raises(ValueError, match=r"max_connections 512 .* may open 256 \(ulimit -n\): lower --max_connections"):
        check_file_descriptors(ConnectionLimits(max_connections=512))
    for bad in ({"header_timeout_s": 0}, {"max_connections": -1}, {"body_timeout_s": float("nan")}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be positive"):
            ConnectionLimits(**bad)


def test_after_an_answer_sent_before_the_body_the_connection_does_not_idle_for_ever(model):
    """A POST to an unknown route is answered (404) before its body is read; the body's bytes then
    cancel uvicorn's keep-alive timer. The connection must still close within the keep-alive timeout."""
    with Server(model, LIMITS) as srv:
        s = connect(srv)
        s.sendall(b"POST /no/such/route HTTP/1.1\r\nhost: x\r\ncontent-length: 20\r\n\r\n")
        first = s.recv(65536)
        s.sendall(b"x" * 20)  # the body, after the answer
        sent = time.monotonic()
        rest, closed_at = read_until_closed(s)
    assert (first + rest).startswith(b"HTTP/1.1 404 ")
    assert closed_at - sent <= KEEP_ALIVE_S + SLACK_S


def test_an_oversized_body_is_answered_413_and_the_connection_closed(model):
    with Server(model, LIMITS, max_body_bytes=100) as srv:
        s = connect(srv)
        s.sendall(REQUEST_HEAD + b"content-length: 5000\r\n\r\n" + b"x" * 200)
        got, _ = read_until_closed(s)  # closed by the server, not left waiting for the other 4,800 bytes
    assert got.startswith(b"HTTP/1.1 413 ") and b"connection: close" in got.lower()


def test_a_pipelined_partial_head_gets_the_header_deadline_and_its_408(model):
    # the keep-alive timeout is the shorter: it must not cut a head that has begun (without a 408)
    limits = ConnectionLimits(header_timeout_s=2.0, body_timeout_s=1.0, keep_alive_timeout_s=1)
    with Server(model, limits) as srv:
        s = connect(srv)
        payload = body([101])
        # a whole request and the first line of a second one, which never completes
        s.sendall(REQUEST_HEAD + b"content-length: %d\r\n\r\n" % len(payload) + payload + b"POST /v1/recommend HTTP/1.1\r\n")
        sent = time.monotonic()
        got, closed_at = read_until_closed(s)
    assert got.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in got
    assert 2.0 - 0.1 <= closed_at - sent <= 2.0 + SLACK_S


def test_a_client_that_stops_reading_its_answers_is_cut_off(model):
    limits = ConnectionLimits(header_timeout_s=30.0, body_timeout_s=30.0, keep_alive_timeout_s=30, send_timeout_s=1.0)
    with Server(model, limits, max_histories_per_request=256) as srv:
        s = connect(srv)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        payload = b'{"histories": [' + b", ".join([b"[101, 102]"] * 256) + b'], "k": 30}'
        request = REQUEST_HEAD + b"content-length: %d\r\n\r\n" % len(payload) + payload
        started = time.monotonic()
        try:  # pipeline answers far larger than the socket buffers, and read none of them
            for _ in range(200):
                s.sendall(request)
        except OSError:  # reset by the server: what the test waits for
            pass
        closed = False
        while time.monotonic() - started < 60 and not closed:
            time.sleep(0.5)
            try:
                s.sendall(request)
            except OSError:
                closed = True
        # the server is still serving others
        assert httpx.post(srv.url + "/v1/recommend", content=body([101]), timeout=30).status_code == 200
    assert closed and time.monotonic() - started < 60


def test_refused_connections_do_not_count_against_the_cap(model):
    limits = ConnectionLimits(header_timeout_s=30.0, body_timeout_s=30.0, keep_alive_timeout_s=30, max_connections=2)
    with Server(model, limits) as srv:
        held = [connect(srv) for _ in range(2)]  # the cap is reached
        time.sleep(0.2)
        for _ in range(20):  # a burst beyond the cap, all refused
            got, _ = read_until_closed(connect(srv))
            assert got.startswith(b"HTTP/1.1 503 ")
        held.pop().close()
        time.sleep(0.2)
        # the place freed is free: the refused ones left no trace in the count
        assert httpx.post(srv.url + "/v1/recommend", content=body([101]), timeout=30).status_code == 200
        held.pop().close()
