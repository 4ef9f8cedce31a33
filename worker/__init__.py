"""The ECS worker: lease an account, assume its role, reproduce, store, clean, release."""
