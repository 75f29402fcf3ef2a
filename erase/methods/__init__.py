"""Unlearning methods, registered by name. A new method is one file here plus its line below."""
from erase.methods.registry import make_method, method_class, method_names, register  # noqa: F401

# The registry: importing a module registers its method.
from erase.methods import ft, ga, relabel, salun  # noqa: E402,F401  # isort: skip
from erase.methods import amnesiac, retrain  # noqa: E402,F401  # isort: skip
from erase.methods import esd, igs, partial, sfron  # noqa: E402,F401  # isort: skip
from erase.methods import ca, fmn, uce  # noqa: E402,F401  # isort: skip
# Parameter selections beyond selection.py's "all" and "saliency".
from erase.methods import conditioning, fisher, layer_fraction  # noqa: E402,F401  # isort: skip
