"""erase: make a trained image generator or classifier forget a class or a concept, and prove it."""
import os

# Never reach a model hub by surprise: offline unless the user opts in with --allow-download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Where recipes of real models look for weights by default ($ERASE_MODELS/<name>); --weights overrides.
os.environ.setdefault("ERASE_MODELS", os.path.join(os.path.expanduser("~"), ".cache", "erase", "models"))

__version__ = "0.1.0"
