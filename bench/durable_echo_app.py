"""A baseline for bench_webhook.py --durable-floor: the echo plus the least a webhook that never loses
a message must do before it replies — one INSERT of the delivery, unique on WeChat's dedup key, and a
durable commit (raw psycopg, one connection per thread, no ORM, no domain work)."""
from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, Response, request
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature

app = Flask(__name__)
TOKEN = os.environ["WECHAT_TOKEN"]
CRYPTO = WeChatCrypto(TOKEN, os.environ["WECHAT_ENCODING_AES_KEY"], os.environ["WECHAT_APP_ID"])
URL = os.environ["DATABASE_URL"].replace("postgresql+psycopg", "postgresql")
with psycopg.connect(URL, autocommit=True) as setup:
    setup.execute("CREATE TABLE IF NOT EXISTS bench_intake "
                  "(id bigserial PRIMARY KEY, dedup_key text UNIQUE, body text)")
_local = threading.local()


def _connection() -> psycopg.Connection:
    if getattr(_local, "connection", None) is None:
        _local.connection = psycopg.connect(URL)
    return _local.connection


@app.post("/wechat")
def echo():
    args = request.args
    check_signature(TOKEN, args["signature"], args["timestamp"], args["nonce"])
    xml = CRYPTO.decrypt_message(request.get_data(), args["msg_signature"], args["timestamp"], args["nonce"])
    msg = parse_message(xml)
    connection = _connection()
    with connection.transaction():
        connection.execute("INSERT INTO bench_intake (dedup_key, body) VALUES (%s, %s)",
                           (f"msg:{msg.id}", getattr(msg, "content", None)))
    reply = create_reply(getattr(msg, "content", "") or "success", msg, render=True)
    return Response(CRYPTO.encrypt_message(reply, args["nonce"], args["timestamp"]),
                    mimetype="application/xml")
