"""Federation transport: inbound HTTP resources and the outbound HTTP client."""
