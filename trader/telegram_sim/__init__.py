"""A local fake of the Telegram Bot API on 127.0.0.1, for tests and rehearsals: the real
python-telegram-bot talks to it through its ``base_url``.

- ``getMe``, ``sendMessage`` (recorded: chat, text, time), ``getUpdates`` (long polling,
  offsets as Telegram's; a second concurrent poller gets 409 Conflict, as on Telegram; a
  poller that hangs up ends its poll), anything else answers ``ok`` with ``true``.
- Updates: ``inject(chat, text, date=..., edited=...)``: a message (or an edited one) sent
  at ``date``; ``pending_updates()``: how many are not confirmed yet.
- Faults for ``sendMessage``: ``fail(status, count)`` (an HTTP error), ``rate_limit
  (retry_after, count)`` (429 with ``parameters.retry_after``), ``hang(seconds, count)``
  (the message is recorded, then the answer waits: a worker killed meanwhile); each only for
  texts containing ``match`` and (if set) to ``chat``.
- Control over HTTP too (for other processes): ``GET /_sim/messages``, ``POST
  /_sim/updates`` ({"chat_id", "text"}), ``POST /_sim/fault`` ({"kind", ...}).
"""

from trader.telegram_sim.server import FakeBotApi, Fault, SentMessage

__all__ = ["FakeBotApi", "Fault", "SentMessage"]
