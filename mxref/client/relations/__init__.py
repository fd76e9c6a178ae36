"""``GET /rooms/{roomId}/relations/{eventId}``: the events that relate to an event."""
