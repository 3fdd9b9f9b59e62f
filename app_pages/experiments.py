"""Experiments: a paper's table reproduced in the app (a quick version of the command line's preset)."""

import streamlit as st

from ui import attack_view, experiments_view, host

experiments_view.settle_interrupted_run()

st.title("Experiments")
st.markdown(
    "One run shows one photo leaking; a paper's claim rests on many. Each preset below is a paper's table: "
    "the same grid of photos, attacks, victims, seeds and defences, with the same figures in its summary. The "
    "quick version runs here in well under a minute; the full one runs on the command line."
)

st.header("1 · The preset", divider="red")
preset, jobs = experiments_view.preset_picker()

st.header("2 · Run it", divider="red")
start = experiments_view.run_controls(preset, jobs)
host.limits_panel(attack_view.run_slots().slots)
run = experiments_view.current_run()
if start:
    experiments_view.live_experiment(preset, jobs)
elif run is None or run.preset != preset.name:
    st.info("Press **Run the preset**: its runs go one after another, each line appears as it finishes, and the "
            "table grows with them.", icon=":material/play_circle:")
else:
    st.header("3 · The table", divider="red")
    experiments_view.results_view(run, preset)
