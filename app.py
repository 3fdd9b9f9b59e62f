"""Gradient Leakage Lab, the live app: `streamlit run app.py`.

The entry point only sets the page up and lists the pages (Streamlit's st.navigation); the pages live in
app_pages/, their reusable pieces in ui/, and the science in dlg_core/ (which never imports Streamlit).
"""

import streamlit as st

from ui.host import set_up_process
from ui.run_engine import warm_up
from ui.style import page_style

st.set_page_config(page_title="Gradient Leakage Lab", page_icon=":material/lock_open:", layout="wide")
page_style()
navigation = st.navigation(
    [
        st.Page("app_pages/attack_lab.py", title="Attack lab", icon=":material/science:", default=True),
        st.Page("app_pages/compare.py", title="Compare attacks", icon=":material/compare_arrows:"),
        st.Page("app_pages/defences.py", title="Defences", icon=":material/shield:"),
        st.Page("app_pages/experiments.py", title="Experiments", icon=":material/table_chart:"),
        st.Page("app_pages/how_it_works.py", title="How it works", icon=":material/school:"),
    ],
    position="top",
)
set_up_process()  # once per server process: one torch thread per run, uploads kept in memory, the janitor
warm_up()  # once per server process, so that the first Run shows its first frame at once
navigation.run()
