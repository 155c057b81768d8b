"""The webhook's nonce claim on a real Redis: one script claims the signed (timestamp, nonce) pair for
one body and answers, in the same round trip, whether the spool holds the resident's deliveries."""
from __future__ import annotations

import redis as redis_lib

from bot.nonces import NonceRegistry
from liaison.conversation.spool import Spool


def test_a_pair_belongs_to_its_first_body_and_the_spool_question_rides_along(redis_client):
    registry = NonceRegistry(redis_client, ttl_seconds=60)
    field = Spool.holds_field("o_claim_1")
    assert registry.claim_along("1700000000", "n1", b"<xml>a</xml>", field) == (True, False)
    # WeChat's retry of the same delivery passes; a replay with another body under the pair does not.
    assert registry.claim_along("1700000000", "n1", b"<xml>a</xml>", field) == (True, False)
    assert registry.claim_along("1700000000", "n1", b"<xml>b</xml>", field) == (False, False)
    assert redis_client.ttl("liaison:webhook:nonce:1700000000:n1") > 0  # kept for the TTL only
    redis_client.hset(field[0], field[1], 1)  # a delivery of this resident waits in the spool
    assert registry.claim_along("1700000000", "n2", b"<xml>c</xml>", field) == (True, True)
    assert registry.claim_along("1700000000", "n3", b"<xml>d</xml>") == (True, None)  # not asked


def test_without_redis_the_claim_falls_back_to_memory_and_does_not_answer_for_the_spool():
    unreachable = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    registry = NonceRegistry(unreachable, ttl_seconds=60)
    field = Spool.holds_field("o_claim_2")
    assert registry.claim_along("1700000000", "n1", b"a", field) == (True, None)
    assert registry.claim_along("1700000000", "n1", b"a", field) == (True, None)
    assert registry.claim_along("1700000000", "n1", b"b", field) == (False, None)
