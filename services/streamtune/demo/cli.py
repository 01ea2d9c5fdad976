"""``streamtune demo``: the sub-command's arguments and handler."""

from __future__ import annotations

import argparse

from streamtune.demo.run import DemoPlan, run_demo, summary
from streamtune.demo.stream import demo_events


def add_demo_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``demo``; its handler is :func:`run_demo_command`."""
    demo = subparsers.add_parser(
        "demo",
        help="stream synthetic film ratings with a drift half-way to the running stack and print the "
        "served model's prequential AUC as it learns",
    )
    demo.add_argument("--events", type=int, default=2000, metavar="N", help="events to send (default 2000)")
    demo.add_argument("--chunk", type=int, default=200, metavar="N", help="events per step (default 200)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--url", default=None, help="inference server (default: from STREAMTUNE_HTTP_HOST/PORT)")
    demo.add_argument(
        "--wait", type=float, default=90.0, metavar="S", help="longest wait for the trainer per step (default 90)"
    )
    demo.set_defaults(handler=run_demo_command)
    return demo


def run_demo_command(args: argparse.Namespace) -> int:
    from streamtune.client import Client

    settings = args.settings
    url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    drift_at = args.events // 2
    events = demo_events(args.events, seed=args.seed, drift_at=drift_at)
    print(
        f"streaming {args.events} film ratings to {settings.events_topic}: everyone likes comedies, romances and "
        f"animation, dislikes horror, war and documentaries; from event {drift_at} new genres arrive "
        "(musicals and sci-fi liked, westerns and film noir disliked).\n"
        "Each step is scored by the served version before it is sent, then the trainer learns from it.",
        flush=True,
    )
    with Client(url, timeout_s=60) as client:
        results = run_demo(settings, DemoPlan(events, drift_at, args.chunk, args.wait), client)
    print(summary(results))
    print(f"lineage, metrics and a prediction form: {url}/")
    return 0
