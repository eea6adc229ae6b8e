"""Serve a saved recommender over HTTP.

hf-genrec serve --model outputs/etegrec-default/final [--host 127.0.0.1] [--port 8000] \\
    [--max_batch_size 64] [--max_wait_ms 5] [--max_queue 1024] [--timeout_ms 2000] \\
    [--header_timeout_s 10] [--body_timeout_s 30] [--keep_alive_timeout_s 5] [--send_timeout_s 30] \\
    [--max_connections 512]

Any family that ``AutoModel.from_pretrained`` loads after ``import hf_genrec`` works. The process
is stateless: run one per core group or machine and put any HTTP load balancer in front. On
SIGTERM it stops accepting, answers what is queued, then exits. A client that does not send its
request head or body in time gets 408 / is disconnected; beyond --max_connections open
connections a new one gets 503 and is closed.
"""

from __future__ import annotations

import argparse
import os

from ..utils.errors import InputError, MissingDependencyError
from .errors import configure_logging, load_checkpoint


def main(argv: list[str] | None = None) -> None:
    try:
        import uvicorn

        from ..serving import ConnectionLimits, ServingConfig, create_app, uvicorn_config
        from ..serving.server import check_file_descriptors
    except ImportError as err:
        raise MissingDependencyError(f'serving needs the "serve" extra: pip install "hf_genrec[serve]" ({err})') from None
    p = argparse.ArgumentParser(prog="hf-genrec serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint folder (or Hub id) of any hf_genrec model family")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max_batch_size", type=int, default=64, help="histories per batched model call")
    p.add_argument("--max_wait_ms", type=float, default=5.0, help="how long a request waits for others to batch with")
    p.add_argument("--max_queue", type=int, default=1024, help="histories allowed to wait; beyond, 503 + Retry-After")
    p.add_argument("--timeout_ms", type=float, default=2000.0, help="a request unanswered this long gets 504")
    p.add_argument("--max_k", type=int, default=100, help="largest k a request may ask for")
    defaults = ConnectionLimits()
    p.add_argument(
        "--header_timeout_s",
        type=float,
        default=defaults.header_timeout_s,
        help="seconds a client has, from connecting or from its first byte after a keep-alive pause, to send "
        "the whole request head; then 408 and the connection closes",
    )
    p.add_argument(
        "--body_timeout_s", type=float, default=defaults.body_timeout_s, help="seconds from the head to the whole body"
    )
    p.add_argument(
        "--keep_alive_timeout_s",
        type=int,
        default=defaults.keep_alive_timeout_s,
        help="seconds an idle connection stays open between requests",
    )
    p.add_argument(
        "--send_timeout_s",
        type=float,
        default=defaults.send_timeout_s,
        help="seconds a client that stopped reading its answers has to resume; then the connection is cut",
    )
    p.add_argument(
        "--max_connections",
        type=int,
        default=defaults.max_connections,
        help="open connections at most; one more gets 503 and is closed (must fit under ulimit -n)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="torch intra-op threads (default: all cores but one, which the event loop needs to keep accepting)",
    )
    p.add_argument("--log_level", default="info")
    p.add_argument(
        "--allow_downloads",
        action="store_true",
        help="let the checkpoint (a Hub id) and an adapter-only checkpoint's base model download; by default only "
        "local folders and the Hub cache are read, whatever the checkpoint's backbone_name_or_path names",
    )
    a = p.parse_args(argv)
    limits = ConnectionLimits(
        header_timeout_s=a.header_timeout_s,
        body_timeout_s=a.body_timeout_s,
        keep_alive_timeout_s=a.keep_alive_timeout_s,
        send_timeout_s=a.send_timeout_s,
        max_connections=a.max_connections,
    )
    check_file_descriptors(limits)  # before the model loads: a wrong flag fails in a second, not a minute
    import torch
    configure_logging(a.log_level)
    torch.set_num_threads(a.threads)
    model = load_checkpoint(a.model, local_files_only=not a.allow_downloads).to(a.device).eval()
    if not callable(getattr(model, "recommend_dense", None)):
        raise InputError(f"{a.model} holds a {type(model).__name__}, which is not a recommender (no recommend_dense)")
    cfg = ServingConfig(
        max_batch_size=a.max_batch_size,
        max_wait_ms=a.max_wait_ms,
        max_queue=a.max_queue,
        timeout_ms=a.timeout_ms,
        max_k=a.max_k,
    )
    config = uvicorn_config(
        create_app(model, cfg), limits, host=a.host, port=a.port, log_level=a.log_level, timeout_graceful_shutdown=30
    )
    uvicorn.Server(config).run()
