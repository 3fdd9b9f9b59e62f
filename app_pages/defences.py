"""Defences: one photo, one attack, one defence at several strengths side by side, then privacy against utility."""

import streamlit as st

from ui import classroom, defences_view, host, link, photo, run_engine

defences_view.DEFENCES.settle_interrupted()

st.title("Defences")
st.markdown("A client can blur its update before sharing it: noise, clipping, pruning, rounding or signs, mixing, "
            "or Soteria's pruning. Each strength gets its own run of the same attack beside the undefended one, and "
            "a second by an attacker who knows the defence: where does the leak stop, for whom, at what cost?")

chosen = photo.photo_fold(defences_view.OWN_SETTINGS.value("size"))
with st.expander("Change the setting: attack, victim, defence and its strengths", icon=":material/tune:",
                 key="fold_defence"):
    setup, label = defences_view.defence_settings(chosen)
st.caption(defences_view.setting_line())
start, _ = defences_view.DEFENCES.controls(
    "Run the comparison", ready=chosen is not None and setup is not None,
    run_help="One attack per strength, and one without a defence, side by side.",
    stop_help="End every run now and keep what they reached.")
host.limits_panel(run_engine.run_slots().slots)
comparison = defences_view.DEFENCES.current()
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
    classroom.show_to_class(link.share_url({}), "defences")
