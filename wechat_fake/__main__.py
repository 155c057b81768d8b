"""Command line for the fake WeChat.

    python -m wechat_fake serve --port 8900 [--appid wx_test_app --secret s3cret --mp-appid … --mp-secret …]
    python -m wechat_fake simulate --url http://127.0.0.1:5000/wechat --token … --appid … --aes-key … \\
        --openid o_demo text "小区路灯坏了"
    python -m wechat_fake simulate … event subscribe --key qrscene_grid:G001
    python -m wechat_fake simulate … voice "路灯坏了"
    python -m wechat_fake simulate … verify --echostr abc

Defaults come from WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_APP_SECRET, WECHAT_ENCODING_AES_KEY,
WECHAT_MP_APP_ID, WECHAT_MP_APP_SECRET, WECHAT_WEBHOOK_URL.
"""

from __future__ import annotations

import argparse
import os
import sys


def _serve(args) -> int:
    from .server import FakeWeChatServer

    fake = FakeWeChatServer(appid=args.appid, secret=args.secret, mp_appid=args.mp_appid,
                            mp_secret=args.mp_secret, host=args.host, port=args.port,
                            enforce_windows=args.enforce_windows, auto_codes=args.auto_codes,
                            quiet=not args.verbose)
    print(f"fake WeChat API for {args.appid}"
          + (f" + mini-program {args.mp_appid}" if args.mp_appid else "")
          + f" on http://{args.host}:{args.port} (control API under /__fake__/)", flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _print_reply(reply) -> None:
    if reply.timed_out:
        print("(no answer within the timeout: WeChat would retry)")
    else:
        print(f"HTTP {reply.status_code}" + (" (encrypted reply)" if reply.encrypted else ""))
        if reply.is_ack:
            print("(acknowledged with 'success' / empty body: nothing shown to the user)")
        elif reply.content is not None:
            print(reply.content)
        elif reply.xml is not None:
            print(reply.xml)
        else:
            print(reply.raw)
    for problem in reply.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)


def _simulate(args) -> int:
    from .simulator import WeChatSimulator

    mode = args.mode or ("safe" if args.aes_key else "plaintext")
    if not args.url or not args.token or not args.appid:
        print("--url, --token and --appid are required (or WECHAT_WEBHOOK_URL, WECHAT_TOKEN, WECHAT_APP_ID)",
              file=sys.stderr)
        return 2
    sim = WeChatSimulator(url=args.url, token=args.token, appid=args.appid,
                          encoding_aes_key=args.aes_key if mode != "plaintext" else None, mode=mode,
                          account=args.account, timeout=args.timeout, strict=False)
    kind = args.kind
    if kind == "verify":
        print(sim.verify_url(echostr=args.echostr))
        return 0
    if kind == "text":
        plain = sim.build_text(args.openid, " ".join(args.text), msg_id=args.msg_id)
    elif kind == "voice":
        plain = sim.build_voice(args.openid, " ".join(args.text) or None, msg_id=args.msg_id)
    elif kind == "event":
        plain = sim.build_event(args.openid, args.event, args.key)
    elif kind == "location":
        plain = sim.build_location(args.openid, args.lat, args.lng, args.label)
    elif kind == "raw":
        with open(args.file, encoding="utf-8") as fh:
            reply = sim.send_raw(fh.read(), sign=not args.unsigned, encrypt=args.encrypt)
        _print_reply(reply)
        return 0 if reply.status_code == 200 else 1
    else:  # pragma: no cover - argparse prevents it
        return 2
    replies = sim.deliveries(plain, n=args.deliveries) if args.deliveries > 1 else [sim.post(plain)]
    for i, reply in enumerate(replies, 1):
        if len(replies) > 1:
            print(f"--- delivery {i}")
        _print_reply(reply)
    return 0 if all(r.status_code == 200 for r in replies) else 1


def main(argv=None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m wechat_fake", description="fake WeChat for offline work")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the fake WeChat API server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.add_argument("--appid", default=env("WECHAT_APP_ID", "wx_test_app"))
    p.add_argument("--secret", default=env("WECHAT_APP_SECRET", "s3cret"))
    p.add_argument("--mp-appid", default=env("WECHAT_MP_APP_ID"))
    p.add_argument("--mp-secret", default=env("WECHAT_MP_APP_SECRET"))
    p.add_argument("--enforce-windows", action="store_true", help="enforce customer-service windows")
    p.add_argument("--auto-codes", action="store_true", help="accept any js_code (derived openid)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=_serve)

    p = sub.add_parser("simulate", help="push a message/event to a webhook like WeChat does")
    p.add_argument("--url", default=env("WECHAT_WEBHOOK_URL", "http://127.0.0.1:5000/wechat"))
    p.add_argument("--token", default=env("WECHAT_TOKEN"))
    p.add_argument("--appid", default=env("WECHAT_APP_ID"))
    p.add_argument("--aes-key", default=env("WECHAT_ENCODING_AES_KEY") or None)
    p.add_argument("--mode", choices=("plaintext", "compatible", "safe"), default=None,
                   help="default: safe when an AES key is given, else plaintext")
    p.add_argument("--openid", default="o_demo")
    p.add_argument("--account", default="gh_fake_account", help="ToUserName (the account's original id)")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--deliveries", type=int, default=1, help="deliver the same message N times (retries)")
    kinds = p.add_subparsers(dest="kind", required=True)
    k = kinds.add_parser("text")
    k.add_argument("text", nargs="+")
    k.add_argument("--msg-id", type=int, default=None)
    k = kinds.add_parser("voice")
    k.add_argument("text", nargs="*", help="speech recognition result")
    k.add_argument("--msg-id", type=int, default=None)
    k = kinds.add_parser("event")
    k.add_argument("event", help="subscribe, SCAN, unsubscribe, CLICK, VIEW, LOCATION, …")
    k.add_argument("--key", default=None, help="EventKey, e.g. qrscene_grid:G001")
    k = kinds.add_parser("location")
    k.add_argument("lat", type=float)
    k.add_argument("lng", type=float)
    k.add_argument("--label", default="")
    k = kinds.add_parser("raw")
    k.add_argument("file")
    k.add_argument("--unsigned", action="store_true")
    k.add_argument("--encrypt", action="store_true")
    k = kinds.add_parser("verify")
    k.add_argument("--echostr", default="abc")
    p.set_defaults(func=_simulate)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
