"""nica-pro backend: a FastAPI app, its database layer and the Hugging Face model cache."""
