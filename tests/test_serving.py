"""The HTTP service, tested over real HTTP: a uvicorn server on a free loopback port."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
import uvicorn

from hf_genrec import ItemIdMap
from hf_genrec.serving import ConnectionLimits, ServingConfig, create_app, uvicorn_config

from .conftest import tiny_recommender

NAMES = [f"sku-{i:02d}" for i in range(30)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``create_app(model, config)`` served as ``hf-genrec serve`` does, in a thread (``should_exit``: what SIGTERM sets)."""

    def __init__(self, model, limits: ConnectionLimits | None = None, **config):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(model, ServingConfig(**config))
        config = uvicorn_config(self.app, limits or ConnectionLimits(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(300):
            try:
                if httpx.get(self.url + "/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

    def post(self, body, **kw):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(self.url + "/v1/recommend", content=data, timeout=30, **kw)


@pytest.fixture
def model():
    m = tiny_recommender(num_items=30).eval()
    m.set_item_map(ItemIdMap(NAMES))
    return m


def slow(model, seconds, fail_first=False):
    """Make the model take ``seconds`` per call (and optionally fail its first call)."""
    original = model.recommend_dense
    calls = []

    def recommend_dense(histories, top_k=10, **kw):
        calls.append(len(histories))
        time.sleep(seconds)
        if fail_first and len(calls) == 1:
            raise RuntimeError("boom")
        return original(histories, top_k=top_k, **kw)

    model.recommend_dense = recommend_dense
    return calls


def test_concurrent_requests_are_batched_and_answered_as_model_recommend(model):
    histories = [[NAMES[(3 * i + j) % 30] for j in range(1 + i % 4)] for i in range(16)]
    with Server(model, max_wait_ms=100, max_batch_size=64) as srv:
        calls = slow(model, 0.0)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda h: srv.post({"history": h, "k": 5}), histories))
        batch = srv.post({"histories": histories[:3], "k": 4}).json()["results"]
        metrics = httpx.get(srv.url + "/metrics").text
    assert all(a.status_code == 200 for a in answers)
    assert len(calls) < 16  # gathered into fewer model calls than requests
    for h, a in zip(histories, answers):
        want = model.recommend([h], top_k=5)
        assert a.json()["items"] == want.items[0]
        assert a.json()["scores"] == pytest.approx(want.scores[0].tolist(), abs=1e-4)
    assert [r["items"] for r in batch] == model.recommend(histories[:3], top_k=4).items
    assert "genrec_batch_size_count" in metrics and "genrec_queue_depth" in metrics


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b'{"history": ["sku-01",', 400, "malformed JSON"),
        ([1, 2], 422, "must be a JSON object"),
        ({"history": "sku-01"}, 422, "history"),
        ({"history": [1.5]}, 422, "an item id must be an integer or a string"),
        ({"history": []}, 422, "history is empty"),
        ({"histories": [["sku-01"], []]}, 422, "histories[1] is empty"),
        ({"history": ["sku-01"], "k": 0}, 422, "k must be between 1 and 100"),
        ({"history": ["sku-01"], "k": 101}, 422, "k must be between 1 and 100"),
        ({"history": ["sku-01"], "k": "5"}, 422, "k: Input should be a valid integer"),
        ({"history": ["sku-01", "nope", "gone"]}, 422, "unknown item ids 'nope', 'gone'"),
        ({"history": ["nope"], "unknown_items": "drop"}, 422, "has no item this model knows"),
        ({"history": ["sku-01"], "histories": [["sku-01"]]}, 422, "exactly one of"),
        ({"history": ["sku-01"], "user": 3}, 422, "user: Extra inputs are not permitted"),
        ({"history": ["sku-01"] * 2000}, 413, "larger than"),
    ],
)
def test_bad_input_is_answered_clearly_and_never_reaches_the_model(model, body, status, message):
    with Server(model, max_body_bytes=8000) as srv:
        calls = slow(model, 0.0)
        r = srv.post(body)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert calls == []


def test_unknown_items_can_be_dropped_and_int_ids_match_a_string_map(model):
    with Server(model) as srv:
        dropped = srv.post({"history": ["sku-01", "nope"], "k": 3, "unknown_items": "drop"}).json()
    assert dropped["items"] == model.recommend([["sku-01"]], top_k=3).items[0]
    int_model = tiny_recommender(num_items=30).eval()
    int_model.set_item_map(ItemIdMap(range(100, 130)))
    with Server(int_model) as srv:
        as_int, as_str = srv.post({"history": [101, 102]}).json(), srv.post({"history": ["101", "102"]}).json()
    assert as_int == as_str and as_int["items"] == int_model.recommend([[101, 102]]).items[0]


def test_full_queue_answers_503_with_retry_after_at_once(model):
    with Server(model, max_queue=2, max_batch_size=1, max_wait_ms=0) as srv:
        slow(model, 0.3)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: srv.post({"history": ["sku-01"]}), range(8)))
        metrics = httpx.get(srv.url + "/metrics").text
    codes = sorted(a.status_code for a in answers)
    assert 200 in codes and 503 in codes, codes
    rejected = [a for a in answers if a.status_code == 503]
    assert all(a.headers["retry-after"] == "1" and "queue is full" in a.json()["error"] for a in rejected)
    assert f'genrec_requests_total{{endpoint="/v1/recommend",status="503"}} {float(len(rejected))}' in metrics


def test_timeout_answers_504_and_model_errors_500_while_the_server_keeps_serving(model):
    with Server(model, timeout_ms=100) as srv:
        slow(model, 0.5)
        assert srv.post({"history": ["sku-01"]}).status_code == 504
    with Server(model) as srv:
        slow(model, 0.0, fail_first=True)
        failed = srv.post({"history": ["sku-01"]})
        # The exception text stays in the log; the client gets an id to quote.
        assert failed.status_code == 500 and "boom" not in failed.text
        assert failed.json()["error"] == "internal error" and len(failed.json()["error_id"]) == 12
        assert srv.post({"history": ["sku-01"]}).status_code == 200
        metrics = httpx.get(srv.url + "/metrics").text
    assert 'genrec_requests_total{endpoint="/v1/recommend",status="500"} 1.0' in metrics
    assert 'genrec_requests_total{endpoint="/v1/recommend",status="200"} 1.0' in metrics


def test_health_ready_and_metrics_count_what_happened(model):
    with Server(model) as srv:
        assert httpx.get(srv.url + "/health").json() == {"status": "ok"}
        assert httpx.get(srv.url + "/ready").json()["num_items"] == 30
        for _ in range(3):
            srv.post({"history": ["sku-01"]})
        srv.post({"history": []})
        text = httpx.get(srv.url + "/metrics").text
    assert 'genrec_requests_total{endpoint="/v1/recommend",status="200"} 3.0' in text
    assert 'genrec_requests_total{endpoint="/v1/recommend",status="422"} 1.0' in text
    assert 'genrec_request_latency_seconds_count{endpoint="/v1/recommend"} 4.0' in text
    assert "genrec_batch_size_count 3.0" in text  # the warm-up call runs outside the batcher


def queue_depth(srv) -> int:
    line = next(x for x in httpx.get(srv.url + "/metrics").text.splitlines() if x.startswith("genrec_queue_depth "))
    return int(float(line.split()[1]))


def test_shutdown_drains_in_flight_requests(model):
    srv = Server(model, max_batch_size=1, max_wait_ms=0).__enter__()
    calls = slow(model, 0.3)
    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(srv.post, {"history": ["sku-01"]}) for _ in range(4)]
        # Shut down only once the server holds all 4 (model calls started + queued): a fixed sleep
        # raced on a loaded machine, where a request not yet sent is rightly refused, not drained.
        deadline = time.time() + 30
        while len(calls) + queue_depth(srv) < 4:
            assert time.time() < deadline, "the 4 requests never reached the server"
            time.sleep(0.01)
        srv.server.should_exit = True  # what uvicorn's SIGTERM handler does
        answers = [p.result() for p in pending]
    srv.thread.join(30)
    assert [a.status_code for a in answers] == [200] * 4
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.url + "/health", timeout=2)


def test_command_line_server_serves_and_exits_on_sigterm(model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hf_genrec", "serve", "--model", str(tmp_path / "ckpt"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/recommend", json={"history": ["sku-03", "sku-04"], "k": 3})
        assert r.json()["items"] == model.recommend([["sku-03", "sku-04"]], top_k=3).items[0]
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so process managers see it.
        assert proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        proc.kill()
    log = proc.stdout.read()
    assert "Application shutdown complete" in log and "Finished server process" in log
    missing = subprocess.run(
        [sys.executable, "-m", "hf_genrec", "serve", "--model", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.startswith("hf-genrec serve: error:") and "Traceback" not in missing.stderr


def test_batcher_keeps_the_answers_of_each_k_apart(model):
    with Server(model, max_wait_ms=100) as srv:
        with ThreadPoolExecutor(4) as pool:
            a3, a25, b3, b25 = pool.map(lambda args: srv.post({"history": args[0], "k": args[1]}).json(), [
                (["sku-01"], 3), (["sku-01"], 25), (["sku-02"], 3), (["sku-02"], 25)
            ])
    assert a3["items"] == model.recommend([["sku-01"]], top_k=3).items[0]
    assert a25["items"] == model.recommend([["sku-01"]], top_k=25).items[0]
    assert b3["items"] == model.recommend([["sku-02"]], top_k=3).items[0] and len(b25["items"]) == 25
    assert torch.tensor(a25["scores"]).diff().le(1e-6).all()


def test_metrics_label_by_route_so_random_paths_add_no_series(model):
    with Server(model) as srv:
        for i in range(5):
            assert httpx.get(f"{srv.url}/no/such/{i}").status_code == 404
        srv.post({"history": ["sku-01"]})
        text = httpx.get(srv.url + "/metrics").text
    assert "/no/such" not in text
    assert 'genrec_requests_total{endpoint="unmatched",status="404"} 5.0' in text
    assert 'genrec_requests_total{endpoint="/v1/recommend",status="200"} 1.0' in text


def test_limits_on_histories_items_and_work_per_request_answer_413_naming_the_limit(model):
    model.config.max_history = 4
    with Server(model, max_histories_per_request=3, max_history_items=10, max_request_items=8) as srv:
        calls = slow(model, 0.0)
        many = srv.post({"histories": [["sku-01"]] * 4})
        long = srv.post({"history": ["sku-01"] * 11})
        work = srv.post({"histories": [["sku-01"] * 4, ["sku-02"] * 4, ["sku-03"]]})  # reads 4 + 4 + 1 items
        # 10 items, but the model reads 4 of them: within the 8-item budget, and cut to 4 for the model.
        fine = srv.post({"history": [NAMES[i] for i in range(10)], "k": 5})
    assert many.status_code == 413 and "max_histories_per_request" in many.json()["error"]
    assert long.status_code == 413 and "max_history_items" in long.json()["error"]
    assert work.status_code == 413 and "max_request_items" in work.json()["error"]
    assert fine.status_code == 200 and calls == [1]
    assert fine.json()["items"] == model.recommend([[NAMES[i] for i in range(6, 10)]], top_k=5).items[0]


def test_exclude_history_per_request(model):
    history = [NAMES[i] for i in range(12)]
    with Server(model, max_wait_ms=50) as srv:
        with ThreadPoolExecutor(2) as pool:
            plain, excluded = pool.map(
                lambda ex: srv.post({"history": history, "k": 10, "exclude_history": ex}).json(), [False, True]
            )
    assert set(plain["items"]) & set(history)  # the random model recommends seen items
    assert not set(excluded["items"]) & set(history)
    assert excluded["items"] == model.recommend([history], top_k=10, exclude_history=True).items[0]


def model_without_time_inputs():
    return tiny_recommender(num_items=30)


def test_a_time_aware_model_takes_timestamps_and_asks_for_them():
    from hf_genrec import HLLMConfig, HLLMForRecommendation

    from .test_hllm import tiny

    torch.manual_seed(0)
    config = HLLMConfig(num_items=30, item_backbone_config=None, item_embedding_dim=8, user_backbone_config=tiny(16),
                        num_time_buckets=8, num_negatives=4)
    hllm = HLLMForRecommendation(config).eval()
    hllm.set_item_embeddings(torch.randn(30, 8))
    hllm.set_item_map(ItemIdMap(NAMES))
    assert hllm.required_inputs == ("history_timestamps",) and model_without_time_inputs().required_inputs == ()
    history, times = ["sku-01", "sku-04", "sku-07"], [0.0, 600.0, 7200.0]
    with Server(hllm) as srv:
        missing = srv.post({"history": history})
        wrong = srv.post({"history": history, "timestamps": [0.0]})
        ok = srv.post({"history": history, "timestamps": times, "k": 5})
        dropped = srv.post({"history": ["sku-01", "nope", "sku-04", "sku-07"], "timestamps": [0.0, 1.0, 600.0, 7200.0],
                            "unknown_items": "drop", "k": 5})
    assert missing.status_code == 422 and '"timestamps"' in missing.json()["error"]
    assert wrong.status_code == 422 and "3 items but 1 timestamps" in wrong.json()["error"]
    want = hllm.recommend([history], top_k=5, history_timestamps=[times]).items[0]
    assert ok.status_code == 200 and ok.json()["items"] == want and dropped.json()["items"] == want
