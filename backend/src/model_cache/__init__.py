"""The Hugging Face model cache: wanted models (spec), cached ones (manifest), fetching (prefetch).

`spec` and `manifest` never import huggingface_hub: the serving process uses them offline.
"""
