"""Applications built on the library: the ``autometa`` command, the demo and the Omniglot recipe.

The library layers (``data -> tasks -> nn -> meta -> estimators / hpo``, and
``rl``) never import this package.
"""
