"""Experiments: a paper's table reproduced in the app (a quick version of the command line's preset)."""

import streamlit as st

from ui import classroom, experiments_view, host, link, run_engine

experiments_view.EXPERIMENTS.settle_interrupted()

st.title("Experiments")
st.markdown("A paper's claim rests on many runs: each preset is a paper's table, run here in a quick version "
            "(the full one on the command line).")

st.header("1 · The preset", divider="red")
preset, jobs = experiments_view.preset_picker()

st.header("2 · Run it", divider="red")
start, _ = experiments_view.EXPERIMENTS.controls(
    experiments_view.run_label(preset, jobs), ready=bool(jobs),
    run_help="Runs the quick grid here, one run after another.",
    stop_help="End the grid now; the runs already done are kept.")
host.limits_panel(run_engine.run_slots().slots)
run = experiments_view.EXPERIMENTS.current()
if start:
    experiments_view.live_experiment(preset, jobs)
elif run is None or run.preset != preset.name:
    st.info("Press **Run the preset**: its runs go one after another, each line appears as it finishes, and the "
            "table grows with them.", icon=":material/play_circle:")
else:
    st.header("3 · The table", divider="red")
    experiments_view.results_view(run, preset)
    classroom.show_to_class(link.share_url({}), "experiments")
