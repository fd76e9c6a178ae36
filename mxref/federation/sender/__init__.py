"""The outbound half of federation: one :class:`~mxref.federation.sender.queue.DestinationQueue`
per remote server, fed by the :class:`~mxref.federation.sender.sender.FederationSender`, with
retry back-off and catch-up from the stored event stream.

Spec: Server-Server API, "Transactions" and "EDUs",
https://spec.matrix.org/v1.19/server-server-api/#transactions.
"""
