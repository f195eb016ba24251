"""Self-supervised methods as LightningModules sharing one small base."""
