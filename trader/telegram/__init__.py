"""Telegram: the notifier (messages out, de-duplicated) and the command bot (operator
controls in), both through python-telegram-bot. See docs/telegram.md."""
