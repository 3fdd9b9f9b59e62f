"""Placeholder until the live app lands: `streamlit run app.py`."""

import streamlit as st

st.title("Gradient Leakage Lab")
st.write("The live demo is being built. Meanwhile: `python -m dlg_core run --help`.")
