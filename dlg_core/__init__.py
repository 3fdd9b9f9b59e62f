"""Gradient Leakage Lab's science core: victims, the federated client, the attacks and their metrics.

Never imports streamlit: the app, the CLI and the tests all drive this same code.
"""
