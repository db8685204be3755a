"""Messages: publish to the cluster's retained log, subscriptions, and the long-poll fan-out.

    publish(store, type, body) -> id          ovsd.messages.log
    publish_event / publish_task_complete     ovsd.messages.events
    subscribe / subscriptions / all_subscribed_types / read   ovsd.messages.subscriptions
    MessageBus (the "bus" service): wait(sid, message_id, timeout), waiter_count    ovsd.messages.bus
"""

from ovsd.messages.bus import MessageBus
from ovsd.messages.events import EVENT_TYPES, publish_event, publish_task_complete
from ovsd.messages.log import EVENT, MESSAGE_TYPES, TASK_COMPLETE, Message, Retention, last_id, publish
from ovsd.messages.subscriptions import SUBSCRIPTION_TTL, all_subscribed_types, subscribe

__all__ = [
    "EVENT",
    "EVENT_TYPES",
    "MESSAGE_TYPES",
    "SUBSCRIPTION_TTL",
    "TASK_COMPLETE",
    "Message",
    "MessageBus",
    "Retention",
    "all_subscribed_types",
    "last_id",
    "publish",
    "publish_event",
    "publish_task_complete",
    "subscribe",
]
