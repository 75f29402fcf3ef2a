"""erase: make a trained image generator or classifier forget a class or a concept, and prove it."""
import os

# Never reach a model hub by surprise: offline unless the user opts in with --allow-download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

__version__ = "0.1.0"
