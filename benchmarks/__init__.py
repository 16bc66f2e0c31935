"""Benchmarks of flask_flexactions against the same work written by hand.

One module per question: :mod:`.overhead`, :mod:`.bulk`, :mod:`.action_list`, :mod:`.load`;
``python -m benchmarks`` runs them all and :mod:`.profile` profiles the hot paths.
"""
