"""The event-sourced core: envelope, schemas, event store, pure reducers, pool and issue commands."""
