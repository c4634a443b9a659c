"""HTTP adapters: each module turns one endpoint's request into a service call and its result into a response."""
