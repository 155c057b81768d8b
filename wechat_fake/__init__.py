"""Offline stand-ins for WeChat: a fake API server and a webhook simulator.

- ``wechat_fake.server.FakeWeChatServer`` — fake api.weixin.qq.com on loopback (``FakeWeChatControl``
  drives one running in another process through ``/__fake__/``)
- ``wechat_fake.simulator.WeChatSimulator`` — pushes signed/encrypted XML to the ``/wechat`` webhook
- ``python -m wechat_fake serve|simulate …`` — the same from the command line
"""

__all__ = ["FakeWeChatServer", "FakeWeChatControl", "WeChatSimulator", "SimReply"]


def __getattr__(name):  # lazy: importing the package does not start anything or import Flask
    if name in ("FakeWeChatServer", "FakeWeChatControl"):
        from . import server
        return getattr(server, name)
    if name in ("WeChatSimulator", "SimReply"):
        from . import simulator
        return getattr(simulator, name)
    raise AttributeError(name)
