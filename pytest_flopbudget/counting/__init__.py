"""Model + inputs -> :class:`~.count.Count`: backends, op formulas, abstract (fake) tensors.

The lowest layer: it knows nothing of pytest or budgets and can be used on its own
(``count_model``). Importing this package does not import torch; its modules do.
"""
