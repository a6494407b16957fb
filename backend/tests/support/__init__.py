"""Test helpers: a throwaway PostgreSQL, the fake Hub, the model test data, subprocess runners."""
