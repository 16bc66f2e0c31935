"""Runnable example apps for flask_flexactions."""
