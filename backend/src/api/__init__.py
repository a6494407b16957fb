"""HTTP routers of the FastAPI app."""
