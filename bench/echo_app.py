"""The baseline for bench_webhook.py: a bare wechatpy echo endpoint doing the same protocol work as
the real webhook (signature check, AES decrypt, parse, reply, AES encrypt) and nothing else."""
from __future__ import annotations

import os

from flask import Flask, Response, request
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature

app = Flask(__name__)
TOKEN = os.environ["WECHAT_TOKEN"]
CRYPTO = WeChatCrypto(TOKEN, os.environ["WECHAT_ENCODING_AES_KEY"], os.environ["WECHAT_APP_ID"])


@app.post("/wechat")
def echo():
    args = request.args
    check_signature(TOKEN, args["signature"], args["timestamp"], args["nonce"])
    xml = CRYPTO.decrypt_message(request.get_data(), args["msg_signature"], args["timestamp"], args["nonce"])
    msg = parse_message(xml)
    reply = create_reply(getattr(msg, "content", "") or "success", msg, render=True)
    return Response(CRYPTO.encrypt_message(reply, args["nonce"], args["timestamp"]),
                    mimetype="application/xml")
