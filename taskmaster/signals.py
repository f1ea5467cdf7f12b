"""Signal receivers of the core app. Kept in one module so apps.ready() has one import."""
