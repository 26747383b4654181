"""Interfaces for people: the ``bayeslin`` command line (``cli`` + ``commands``) and the tutorial demo."""
