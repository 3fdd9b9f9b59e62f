"""Defences: one photo, one attack, one defence at several strengths side by side, then privacy against utility."""

import streamlit as st

from ui import attack_view, defences_view, host, photo

defences_view.settle_interrupted_comparison()

st.title("Defences")
st.markdown(
    "A client can blur its update before sharing it: add noise, clip it, drop its small entries, round it or "
    "keep only its signs, mix its photo with another, or prune what Soteria finds most revealing. Each strength "
    "below gets its own run of the same attack on the same photo, beside the undefended update, and a second "
    "run by an attacker who knows the defence. Where does the leak stop, for whom, and how much learning does "
    "that cost?"
)

chosen = photo.photo_section(defences_view.current_size())

st.header("2 · The attack and the defence", divider="red")
setup, label = defences_view.defence_settings(chosen)

st.header("3 · Side by side", divider="red")
start = defences_view.run_controls(ready=chosen is not None and setup is not None)
host.limits_panel(attack_view.run_slots().slots)
comparison = defences_view.current_comparison()
if start:
    defences_view.live_comparison(chosen, setup, label)
elif comparison is None:
    st.info("Press **Run the comparison**: the client shares its update once as it is and once per strength of "
            "the defence, and the same attacker works on each.", icon=":material/play_circle:")
else:
    defences_view.results_tiles(comparison)

    st.header("4 · Privacy against utility", divider="red")
    defences_view.privacy_utility_charts(comparison)
    defences_view.epsilon_note(comparison)
    with st.expander("Every run in numbers", icon=":material/table_chart:"):
        defences_view.results_table(comparison)
