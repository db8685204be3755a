"""A fan-out's equal long-poll answers are encoded once, and never reused for an answer that differs."""

from __future__ import annotations

import json

from ovsd.api.views.messages import SharedAnswer
from ovsd.messages.bus import answer


def test_equal_answers_share_one_encoding_and_different_ones_never_do() -> None:
    shared = SharedAnswer()
    batch = [{"id": 7, "type": "EVENT", "body": {"type": "x"}}]
    first = shared.encode(answer(batch, 7, ["EVENT"]))
    assert shared.encode(answer(batch, 7, ["EVENT"])) is first
    assert json.loads(first) == {"messages": batch, "last_message_id": 7, "subscriptions": ["EVENT"]}
    # another list with the same content (another batch), another position, other types, a miss
    for body in (answer([dict(batch[0])], 7, ["EVENT"]), answer(batch, 8, ["EVENT"]),
                 answer(batch, 7, ["EVENT", "TASK_COMPLETE"]), answer(batch, 7, ["EVENT"], missed=True)):
        encoded = shared.encode(body)
        assert encoded is not first
        assert json.loads(encoded) == body
    # empty answers (timeouts) are not kept: the entry stays the last fan-out's
    assert json.loads(shared.encode(answer([], 9, ["EVENT"])))["messages"] == []
    assert shared.encode(answer(batch, 7, ["EVENT"], missed=True)) is encoded
