"""Ephemeral room activity from clients: typing notifications, receipts and read markers."""
